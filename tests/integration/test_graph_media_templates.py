"""The Graph client's media and template endpoints over real HTTP against the loopback simulator."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import TEST_ACCESS_TOKEN
from local.graph_simulator import GraphSimulator
from local.template_catalogue import DEFAULT_WABA_ID, default_catalogue
from whatsapp_crm.graph import GraphClient, GraphUnavailableError, InvalidParameterError, MediaError
from whatsapp_crm.graph.errors import MediaDownloadError, MediaTooLargeError
from whatsapp_crm.send_models import parse_send_request

pytestmark = pytest.mark.integration

PHONE_NUMBER_ID = "106540352242922"
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # a JPEG's magic, then 10 KB of bytes
PDF = b"%PDF-1.7\n" + b"floor plan " * 500


class TestMediaMetadataAndDownload:
    def test_a_leads_photo_is_described_then_downloaded_with_its_sha256(
        self, graph_fake: GraphSimulator, graph_client: GraphClient
    ) -> None:
        # Given Meta holds a photo a lead sent
        media_id = graph_fake.add_media(PHOTO, "image/jpeg", phone_number_id=PHONE_NUMBER_ID)
        # When the client asks for it, checking that it belongs to our number
        info = graph_client.get_media(media_id, phone_number_id=PHONE_NUMBER_ID)
        # Then it learns Meta's type, size and hash, and a short-lived URL
        assert (info.media_id, info.mime_type, info.file_size) == (media_id, "image/jpeg", len(PHOTO))
        assert info.sha256 == hashlib.sha256(PHOTO).hexdigest()
        (request,) = graph_fake.recorded()
        assert request.path == f"/v22.0/{media_id}?phone_number_id={PHONE_NUMBER_ID}"
        # And the download streams the exact bytes, hashed on the way
        sink = io.BytesIO()
        downloaded = graph_client.download_media(info.url, sink, max_bytes=1_000_000)
        assert sink.getvalue() == PHOTO
        assert (downloaded.size, downloaded.sha256) == (len(PHOTO), info.sha256)

    def test_the_download_needs_the_token_and_the_client_sends_it(self, graph_fake: GraphSimulator) -> None:
        media_id = graph_fake.add_media(PHOTO, "image/jpeg")
        with GraphClient(TEST_ACCESS_TOKEN, base_url=graph_fake.base_url) as client:
            url = client.get_media(media_id).url
        with GraphClient("EAAG-another-token", base_url=graph_fake.base_url) as stranger:
            with pytest.raises(MediaDownloadError) as refused:
                stranger.download_media(url, io.BytesIO(), max_bytes=1_000_000)
        assert refused.value.http_status == 401

    def test_a_file_over_the_cap_stops_the_download_at_the_cap(
        self, graph_fake: GraphSimulator, graph_client: GraphClient
    ) -> None:
        media_id = graph_fake.add_media(PDF, "application/pdf")
        url = graph_client.get_media(media_id).url
        sink = io.BytesIO()
        with pytest.raises(MediaTooLargeError) as too_large:
            graph_client.download_media(url, sink, max_bytes=1000)
        assert too_large.value.limit == 1000
        assert len(sink.getvalue()) <= 1000 + 64 * 1024  # never more than one chunk past the cap

    def test_an_expired_url_is_refused_so_the_caller_fetches_a_fresh_one(
        self, graph_fake: GraphSimulator, graph_client: GraphClient
    ) -> None:
        media_id = graph_fake.add_media(PHOTO, "image/jpeg", faults={"expired_url"})
        url = graph_client.get_media(media_id).url
        with pytest.raises(MediaDownloadError) as refused:
            graph_client.download_media(url, io.BytesIO(), max_bytes=1_000_000)
        assert refused.value.http_status == 404

    def test_a_media_host_failure_is_retried_and_the_retry_starts_the_file_over(
        self, graph_fake: GraphSimulator, graph_client: GraphClient, graph_sleeps: list[float]
    ) -> None:
        media_id = graph_fake.add_media(PHOTO, "image/jpeg")
        url = graph_client.get_media(media_id).url
        graph_fake.fail_next(131000, http_status=502, on="download")
        sink = io.BytesIO()
        downloaded = graph_client.download_media(url, sink, max_bytes=1_000_000)
        assert sink.getvalue() == PHOTO
        assert downloaded.size == len(PHOTO)
        assert len(graph_sleeps) == 1

    def test_an_unknown_media_id_is_graphs_invalid_parameter(
        self, graph_fake: GraphSimulator, graph_client: GraphClient
    ) -> None:
        media_id = graph_fake.add_media(PHOTO, "image/jpeg", faults={"missing"})
        with pytest.raises(InvalidParameterError) as missing:
            graph_client.get_media(media_id)
        assert missing.value.code == 100

    def test_meta_failing_to_fetch_the_leads_media_is_a_media_error(
        self, graph_fake: GraphSimulator, graph_client: GraphClient
    ) -> None:
        media_id = graph_fake.add_media(PHOTO, "image/jpeg")
        graph_fake.fail_next(131052, on="media")
        with pytest.raises(MediaError) as failed:
            graph_client.get_media(media_id)
        assert failed.value.code == 131052

    def test_an_id_that_is_not_numeric_never_becomes_a_url_path(self, graph_client: GraphClient) -> None:
        with pytest.raises(ValueError, match="numeric"):
            graph_client.get_media("../../123/messages")

    def test_the_token_is_never_sent_to_a_host_that_is_not_meta(self, graph_client: GraphClient) -> None:
        # Given a server that records what it is sent, on a host Meta would never use for media
        seen: list[str | None] = []

        class Recorder(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.headers.get("Authorization"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with pytest.raises(MediaDownloadError):
                graph_client.download_media(
                    f"http://127.0.0.1:{server.server_address[1]}/x", io.BytesIO(), max_bytes=10
                )
        finally:
            server.shutdown()
            server.server_close()
        # Then no request (and so no token) ever left
        assert seen == []


class TestUpload:
    def test_a_brochure_is_uploaded_as_multipart_and_meta_holds_its_bytes(
        self, graph_fake: GraphSimulator, graph_client: GraphClient
    ) -> None:
        media_id = graph_client.upload_media(PHONE_NUMBER_ID, PDF, mime_type="application/pdf", filename="brochure.pdf")
        (request,) = graph_fake.recorded()
        assert request.path == f"/v22.0/{PHONE_NUMBER_ID}/media"
        assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
        assert request.body["messaging_product"] == "whatsapp"
        assert request.body["type"] == "application/pdf"
        assert request.body["file"]["filename"] == "brochure.pdf"
        stored = graph_fake.media(media_id)
        assert stored is not None and stored.content == PDF and stored.phone_number_id == PHONE_NUMBER_ID

    def test_a_type_meta_does_not_take_is_its_upload_error(
        self, graph_fake: GraphSimulator, graph_client: GraphClient
    ) -> None:
        with pytest.raises(MediaError) as refused:
            graph_client.upload_media(
                PHONE_NUMBER_ID, b"MZ\x90\x00", mime_type="application/x-msdownload", filename="a.exe"
            )
        assert refused.value.code == 131053

    def test_an_outage_is_graph_unavailable(self, graph_fake: GraphSimulator, graph_client: GraphClient) -> None:
        graph_fake.set_outage(True)
        with pytest.raises(GraphUnavailableError):
            graph_client.upload_media(PHONE_NUMBER_ID, PDF, mime_type="application/pdf", filename="b.pdf")


class TestTemplateCatalogue:
    @pytest.fixture
    def catalogue_fake(self) -> Iterator[GraphSimulator]:
        with GraphSimulator(access_token=TEST_ACCESS_TOKEN, templates=default_catalogue()) as simulator:
            yield simulator

    def test_pages_follow_the_after_cursor_until_there_is_no_next(self, catalogue_fake: GraphSimulator) -> None:
        with GraphClient(TEST_ACCESS_TOKEN, base_url=catalogue_fake.base_url) as client:
            pages = [client.list_templates(DEFAULT_WABA_ID, limit=4)]
            while pages[-1].after:
                pages.append(client.list_templates(DEFAULT_WABA_ID, limit=4, after=pages[-1].after))
        names = [(t["name"], t["language"]) for page in pages for t in page.templates]
        assert names == [(t["name"], t["language"]) for t in default_catalogue()]
        assert [len(page.templates) for page in pages] == [4, 4, 1]
        first = catalogue_fake.recorded()[0]
        assert "fields=id%2Cname%2Clanguage%2Cstatus%2Ccategory%2Cparameter_format%2Ccomponents" in first.path
        assert set(pages[0].templates[0]) == {
            "id",
            "name",
            "language",
            "status",
            "category",
            "parameter_format",
            "components",
        }

    def test_an_empty_catalogue_is_one_empty_page(self) -> None:
        with GraphSimulator(access_token=TEST_ACCESS_TOKEN, templates=[]) as empty:
            with GraphClient(TEST_ACCESS_TOKEN, base_url=empty.base_url) as client:
                page = client.list_templates(DEFAULT_WABA_ID)
        assert (page.templates, page.after) == ([], None)

    def test_sends_are_checked_against_the_catalogue_as_meta_checks_them(self, catalogue_fake: GraphSimulator) -> None:
        from whatsapp_crm.graph import TemplateError

        def send(name: str, components: list[dict[str, object]] | None = None) -> int | None:
            template: dict[str, object] = {"name": name, "language": {"code": "he"}}
            if components is not None:
                template["components"] = components
            with GraphClient(TEST_ACCESS_TOKEN, base_url=catalogue_fake.base_url) as client:
                try:
                    message = parse_send_request({"to": "+972525551234", "type": "template", "template": template})
                    client.send_message(PHONE_NUMBER_ID, message)
                except TemplateError as error:
                    return error.code
            return None

        one = [{"type": "body", "parameters": [{"type": "text", "text": "דנה"}]}]
        two = [{"type": "body", "parameters": [{"type": "text", "text": "דנה"}, {"type": "text", "text": "הרצל 10"}]}]
        assert send("viewing_reminder") is None
        assert send("property_update", two) is None
        assert send("property_update", one) == 132000
        assert send("no_such_template") == 132001
        assert send("new_project_launch", one) == 132001  # still in review
        assert send("price_drop_alert", one) == 132015  # paused
