"""Inbound media kept, through the real functions: WebhookFunction stores the message, ResponderFunction hands
it to the media queue, MediaFunction fetches it from the Graph simulator into moto's S3, the read API shows
it and the file route answers with a 15-minute link. moto's server over HTTP, the simulator on loopback."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from conftest import TEST_ACCESS_TOKEN, AwsStack
from integration.api_client import ApiClient, _result
from integration.conftest import drain
from local import meta_payloads as meta
from local.apigw import http_api_event, lambda_context
from local.graph_simulator import GraphSimulator
from local.handlers import load_function_module

LEAD = "972525551234"
OTHER_LEAD = "972545550199"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 40
PDF = b"%PDF-1.7\n" + "תלוש שכר".encode() * 500 + b"\n%%EOF"


def _lambda_records(aws: AwsStack, logical_id: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    arn = f"arn:aws:sqs:eu-west-1:123456789012:{logical_id}"
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message["Attributes"]),
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "eu-west-1",
            }
            for message in messages
        ]
    }


class Pipeline:
    """Meta's webhook, then each function the way its event source would call it."""

    def __init__(self, aws: AwsStack, function_env: Callable[..., dict[str, str]], graph: GraphSimulator, webhook: Any):
        self.aws = aws
        self.function_env = function_env
        self.graph = graph
        self.webhook = webhook
        self.overrides = {"WHATSAPP_PHONE_NUMBER_IDS": meta.DEMO_PHONE_NUMBER_ID, **graph.environment()}

    def lead_sends(self, kind: str, media_id: str, *, wa_id: str = LEAD, **fields: Any) -> str:
        message = {
            "from": wa_id,
            "id": meta.new_wamid(),
            "timestamp": str(int(time.time()) - 5),
            "type": kind,
            kind: {"id": media_id, **fields},
        }
        assert self.webhook(meta.envelope(meta.message_value([message], name="דנה"))).status == 200
        return str(message["id"])

    def responder_runs(self) -> dict[str, Any]:
        self.function_env("ResponderFunction", **self.overrides)
        module = load_function_module("ResponderFunction")
        event = _lambda_records(self.aws, "InboundQueue", drain(self.aws, "InboundQueue"))
        result: dict[str, Any] = module.handle(event, lambda_context("ResponderFunction"))
        return result

    def archive_requests(self) -> list[dict[str, Any]]:
        return drain(self.aws, "MediaQueue")

    def archiver_runs(self, messages: list[dict[str, Any]] | None = None, **env: str) -> dict[str, Any]:
        self.function_env("MediaFunction", **self.overrides, **env)
        module = load_function_module("MediaFunction")
        batch = messages if messages is not None else self.archive_requests()
        assert batch, "nothing on the media queue"
        result: dict[str, Any] = module.handle(
            _lambda_records(self.aws, "MediaQueue", batch), lambda_context("MediaFunction")
        )
        return result

    def archive(self, kind: str, media_id: str, **fields: Any) -> str:
        wamid = self.lead_sends(kind, media_id, **fields)
        self.responder_runs()
        assert self.archiver_runs()["batchItemFailures"] == []
        return wamid

    def file(self, wa_id: str, media_id: str, headers: dict[str, str] | None = None) -> Any:
        self.function_env("MediaFunction", **self.overrides)
        module = load_function_module("MediaFunction")
        event = http_api_event(
            "GET",
            f"/conversations/{wa_id}/media/{media_id}",
            headers=headers,
            path_parameters={"wa_id": wa_id, "media_id": media_id},
            route_key="GET /conversations/{wa_id}/media/{media_id}",
        )
        return _result(module.handle(event, lambda_context("MediaFunction")))

    def objects(self) -> list[str]:
        listed = self.aws.client("s3").list_objects_v2(Bucket=self.aws.ref("MediaBucket"))
        return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture
def pipeline(
    aws: AwsStack, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator, webhook: Any
) -> Pipeline:
    return Pipeline(aws, function_env, graph_fake, webhook)


@pytest.fixture
def api(function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> ApiClient:
    return ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID)


def _thread_media(api: ApiClient, wa_id: str = LEAD) -> list[dict[str, Any]]:
    return [m["media"] for m in api.messages(wa_id).json()["messages"] if m.get("media")]


def _expect_unavailable(pipeline: Pipeline, api: ApiClient, reason: str) -> dict[str, Any]:
    (media,) = _thread_media(api)
    assert media["status"] == "unavailable" and media["reason"] == reason
    assert pipeline.objects() == []
    return media


class TestArchive:
    def test_a_leads_photo_is_kept_checked_and_shown_in_the_thread(
        self, pipeline: Pipeline, api: ApiClient, graph_fake: GraphSimulator, aws: AwsStack
    ) -> None:
        # Given a lead who sends a photo of their ID
        media_id = graph_fake.add_media(PNG, "image/png", phone_number_id=meta.DEMO_PHONE_NUMBER_ID)
        wamid = pipeline.lead_sends("image", media_id, mime_type="image/png", caption="תעודת זהות")
        # Then before the archiver ran the thread says pending (the webhook did not wait for Meta)
        assert _thread_media(api)[0]["status"] == "pending"
        assert [r.endpoint for r in graph_fake.recorded()] == []
        # When the responder hands it on and the archiver runs
        pipeline.responder_runs()
        (request,) = pipeline.archive_requests()
        assert json.loads(request["Body"])["media_id"] == media_id
        assert pipeline.archiver_runs([request])["batchItemFailures"] == []
        # Then the file is in the private bucket, byte for byte, labelled with Meta's type and as an attachment
        key = f"inbound/{LEAD}/{media_id}"
        assert pipeline.objects() == [key]
        s3 = aws.client("s3")
        stored = s3.get_object(Bucket=aws.ref("MediaBucket"), Key=key)
        assert stored["Body"].read() == PNG
        assert stored["ContentType"] == "image/png" and stored["ContentDisposition"] == "attachment"
        assert stored["ServerSideEncryption"] == "AES256"
        # And the thread shows it archived, with size and checksum
        (media,) = _thread_media(api)
        assert media == {
            "id": media_id,
            "mime_type": "image/png",
            "size": len(PNG),
            "sha256": hashlib.sha256(PNG).hexdigest(),
            "caption": "תעודת זהות",
            "filename": None,
            "status": "archived",
            "reason": None,
        }
        assert api.messages(LEAD).json()["messages"][0]["id"] == wamid

    def test_the_file_route_redirects_to_a_15_minute_link_and_never_to_meta(
        self, pipeline: Pipeline, graph_fake: GraphSimulator
    ) -> None:
        media_id = graph_fake.add_media(PDF, "application/pdf", phone_number_id=meta.DEMO_PHONE_NUMBER_ID)
        pipeline.archive("document", media_id, mime_type="application/pdf", filename="תלוש שכר 11.pdf")
        answer = pipeline.file(LEAD, media_id)
        assert answer.status == 302
        location = answer.headers["location"]
        assert graph_fake.base_url not in location and TEST_ACCESS_TOKEN not in location
        query = parse_qs(urlsplit(location).query)
        assert query["X-Amz-Expires"] == ["900"]
        assert "attachment" in query["response-content-disposition"][0]
        assert "filename*=UTF-8''" in query["response-content-disposition"][0]
        downloaded = requests.get(location, timeout=10)
        assert downloaded.status_code == 200 and downloaded.content == PDF

    def test_a_page_with_a_bearer_token_gets_the_link_itself_as_json(
        self, pipeline: Pipeline, graph_fake: GraphSimulator
    ) -> None:
        # Given an archived image, when the inbox asks for it with Accept: application/json
        media_id = graph_fake.add_media(PNG, "image/png", phone_number_id=meta.DEMO_PHONE_NUMBER_ID)
        pipeline.archive("image", media_id, mime_type="image/png")
        answer = pipeline.file(LEAD, media_id, {"Accept": "application/json"})
        # Then it gets the same 15-minute link as a JSON body, which loads the file
        assert answer.status == 200 and answer.headers["cache-control"] == "no-store"
        document = json.loads(answer.body)
        assert document["expires_in"] == 900
        assert parse_qs(urlsplit(document["url"]).query)["X-Amz-Expires"] == ["900"]
        assert requests.get(document["url"], timeout=10).content == PNG

    def test_another_leads_file_is_404_as_if_it_did_not_exist(
        self, pipeline: Pipeline, graph_fake: GraphSimulator
    ) -> None:
        media_id = graph_fake.add_media(PNG, "image/png")
        pipeline.archive("image", media_id, mime_type="image/png")
        for wa_id, asked in ((OTHER_LEAD, media_id), (LEAD, "999999999")):
            answer = pipeline.file(wa_id, asked)
            assert answer.status == 404 and json.loads(answer.body)["error"]["code"] == "not_found"

    def test_a_file_not_archived_yet_is_409_with_its_state(
        self, pipeline: Pipeline, graph_fake: GraphSimulator
    ) -> None:
        media_id = graph_fake.add_media(PNG, "image/png", faults={"missing"})
        pipeline.archive("image", media_id, mime_type="image/png")
        answer = pipeline.file(LEAD, media_id)
        assert answer.status == 409
        error = json.loads(answer.body)["error"]
        assert (error["code"], error["media_status"], error["reason"]) == (
            "media_not_archived",
            "unavailable",
            "gone_at_meta",
        )

    @pytest.mark.parametrize("path", [("0525551234", "12"), (LEAD, "12ab"), (LEAD, "../x")])
    def test_a_bad_path_is_a_400_or_404_never_a_500(self, pipeline: Pipeline, path: tuple[str, str]) -> None:
        answer = pipeline.file(*path)
        assert answer.status in (400, 404)

    def test_a_redelivered_request_downloads_nothing_again(
        self, pipeline: Pipeline, graph_fake: GraphSimulator
    ) -> None:
        media_id = graph_fake.add_media(PNG, "image/png")
        pipeline.lead_sends("image", media_id, mime_type="image/png")
        pipeline.responder_runs()
        (request,) = pipeline.archive_requests()
        assert pipeline.archiver_runs([request])["batchItemFailures"] == []
        downloads = sum(1 for r in graph_fake.recorded() if r.endpoint == "download")
        assert pipeline.archiver_runs([request])["batchItemFailures"] == []
        assert sum(1 for r in graph_fake.recorded() if r.endpoint == "download") == downloads == 1


class TestWhatCannotBeKept:
    def test_a_file_meta_no_longer_holds_keeps_its_message_and_says_so(
        self, pipeline: Pipeline, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        media_id = graph_fake.add_media(PNG, "image/png", faults={"missing"})
        pipeline.archive("image", media_id, mime_type="image/png", caption="הסלון")
        media = _expect_unavailable(pipeline, api, "gone_at_meta")
        assert media["caption"] == "הסלון"  # the message itself is kept
        assert api.messages(LEAD).json()["messages"][0]["text"] == "הסלון"

    def test_a_checksum_that_does_not_match_is_not_kept(
        self, pipeline: Pipeline, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        media_id = graph_fake.add_media(PNG, "image/png", faults={"wrong_sha256"})
        pipeline.archive("image", media_id, mime_type="image/png")
        _expect_unavailable(pipeline, api, "checksum_mismatch")

    def test_an_expired_download_url_is_fetched_afresh_once_then_given_up(
        self, pipeline: Pipeline, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        media_id = graph_fake.add_media(PNG, "image/png", faults={"expired_url"})
        pipeline.archive("image", media_id, mime_type="image/png")
        _expect_unavailable(pipeline, api, "meta_download_failed")
        endpoints = [r.endpoint for r in graph_fake.recorded()]
        assert endpoints.count("media") == 2 and endpoints.count("download") == 2

    def test_a_file_over_the_size_cap_is_not_downloaded_past_it(
        self, pipeline: Pipeline, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        media_id = graph_fake.add_media(PDF, "application/pdf")
        pipeline.lead_sends("document", media_id, mime_type="application/pdf")
        pipeline.responder_runs()
        pipeline.archiver_runs(MEDIA_MAX_BYTES=str(len(PDF) - 1))
        media = _expect_unavailable(pipeline, api, "too_large")
        assert media["size"] == len(PDF)

    def test_an_empty_file_is_not_kept(self, pipeline: Pipeline, api: ApiClient, graph_fake: GraphSimulator) -> None:
        media_id = graph_fake.add_media(b"", "application/pdf")
        pipeline.archive("document", media_id, mime_type="application/pdf")
        _expect_unavailable(pipeline, api, "empty")

    def test_bytes_that_contradict_metas_type_are_not_kept(
        self, pipeline: Pipeline, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        media_id = graph_fake.add_media(b"MZ\x90\x00 an executable, not a PDF" * 10, "application/pdf")
        pipeline.archive("document", media_id, mime_type="application/pdf")
        _expect_unavailable(pipeline, api, "type_mismatch")

    def test_meta_down_is_retried_and_the_last_attempt_gives_up_without_losing_the_message(
        self, pipeline: Pipeline, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        media_id = graph_fake.add_media(PNG, "image/png")
        pipeline.lead_sends("image", media_id, mime_type="image/png")
        pipeline.responder_runs()
        requests_ = pipeline.archive_requests()
        graph_fake.set_outage(True)
        # A first attempt fails the record (the queue redelivers it) and leaves the media pending
        assert len(pipeline.archiver_runs(requests_)["batchItemFailures"]) == 1
        assert _thread_media(api)[0]["status"] == "pending"
        # The last one marks it unavailable instead of sending it to the dead-letter queue
        last = [{**m, "Attributes": {**m["Attributes"], "ApproximateReceiveCount": "5"}} for m in requests_]
        assert pipeline.archiver_runs(last)["batchItemFailures"] == []
        graph_fake.set_outage(False)
        _expect_unavailable(pipeline, api, "meta_download_failed")

    def test_a_text_message_asks_for_no_archive(self, pipeline: Pipeline, webhook: Any) -> None:
        assert webhook(meta.envelope(meta.message_value([meta.text_message(LEAD, "שלום")]))).status == 200
        pipeline.responder_runs()
        assert pipeline.archive_requests() == []
