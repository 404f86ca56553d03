"""POST /media through the real MediaFunction (moto's S3 and DynamoDB over HTTP, the Graph simulator on loopback),
then the upload sent with POST /messages and shown in the thread."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from urllib3 import encode_multipart_formdata

from conftest import AwsStack
from integration.api_client import ApiClient, ApiResult, _result
from local import meta_payloads as meta
from local.apigw import http_api_event, lambda_context
from local.graph_simulator import GraphSimulator
from local.handlers import load_function_module

LEAD = "972525551234"
PDF = b"%PDF-1.7\n" + "פרויקט הגפן - פרוספקט".encode() * 400 + b"\n%%EOF"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x42" * 3000


class Uploads:
    def __init__(self, aws: AwsStack, function_env: Callable[..., dict[str, str]], graph: GraphSimulator) -> None:
        self.aws = aws
        self.function_env = function_env
        self.graph = graph

    def post(self, body: bytes, content_type: str | None, query: str = "") -> ApiResult:
        self.function_env(
            "MediaFunction", WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID, **self.graph.environment()
        )
        module = load_function_module("MediaFunction")
        headers = {"content-type": content_type} if content_type else {}
        event = http_api_event("POST", "/media", body=body, headers=headers, query=query, force_base64=True)
        return _result(module.handle(event, lambda_context("MediaFunction")))

    def multipart(
        self, content: bytes, mime_type: str, filename: str = "brochure.pdf", name: str = "file"
    ) -> ApiResult:
        body, content_type = encode_multipart_formdata({name: (filename, content, mime_type)})
        return self.post(body, content_type)

    def kept(self) -> dict[str, bytes]:
        s3 = self.aws.client("s3")
        bucket = self.aws.ref("MediaBucket")
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed}


@pytest.fixture
def uploads(aws: AwsStack, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> Uploads:
    return Uploads(aws, function_env, graph_fake)


@pytest.fixture
def api(function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> ApiClient:
    return ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID)


def _error(result: ApiResult) -> dict[str, Any]:
    return dict(json.loads(result.body)["error"])


class TestUpload:
    def test_a_brochure_goes_to_whatsapp_and_the_bucket_and_is_sent_by_its_id(
        self, uploads: Uploads, api: ApiClient, graph_fake: GraphSimulator, webhook: Any
    ) -> None:
        # Given an agent uploads a brochure as multipart/form-data
        result = uploads.multipart(PDF, "application/pdf", filename="פרוספקט הגפן.pdf")
        # Then WhatsApp holds it and the answer gives its id
        assert result.status == 201, result.body
        answer = result.json()
        media_id = answer["media_id"]
        assert answer == {
            "media_id": media_id,
            "mime_type": "application/pdf",
            "size": len(PDF),
            "sha256": hashlib.sha256(PDF).hexdigest(),
            "filename": "פרוספקט הגפן.pdf",
            "kind": "document",
        }
        (held,) = graph_fake.uploads()
        assert held.content == PDF and held.mime_type == "application/pdf"
        # And the bucket keeps the same bytes under that id
        assert uploads.kept() == {f"uploads/{media_id}": PDF}
        # When it is sent to a lead whose window is open
        message = meta.text_message(LEAD, "אפשר פרוספקט?", timestamp=int(time.time()) - 30)
        assert webhook(meta.envelope(meta.message_value([message]))).status == 200
        sent = api.send({"to": LEAD, "type": "document", "document": {"id": media_id, "filename": "הגפן.pdf"}})
        assert sent.status == 201, sent.body
        assert graph_fake.sent_messages()[0]["document"]["id"] == media_id
        # Then the thread shows the file as kept, and the file route serves it
        (outbound,) = [m for m in api.messages(LEAD).json()["messages"] if m["direction"] == "outbound"]
        assert outbound["media"]["status"] == "archived" and outbound["media"]["size"] == len(PDF)
        uploads.function_env("MediaFunction", **graph_fake.environment())
        module = load_function_module("MediaFunction")
        event = http_api_event(
            "GET",
            f"/conversations/{LEAD}/media/{media_id}",
            path_parameters={"wa_id": LEAD, "media_id": media_id},
            route_key="GET /conversations/{wa_id}/media/{media_id}",
        )
        link = _result(module.handle(event, lambda_context("MediaFunction")))
        assert link.status == 302
        assert requests.get(link.headers["location"], timeout=10).content == PDF

    def test_raw_bytes_with_their_content_type_are_accepted(self, uploads: Uploads) -> None:
        result = uploads.post(JPEG, "image/jpeg", query="filename=flat.jpg")
        assert result.status == 201, result.body
        assert result.json()["kind"] == "image" and result.json()["filename"] == "flat.jpg"


class TestBadUploads:
    @pytest.mark.parametrize(
        ("body", "content_type", "status", "code"),
        [
            (b"", "application/pdf", 400, "empty_file"),
            (b"PK\x03\x04zip", "application/zip", 415, "unsupported_media_type"),
            (b"<html></html>", "text/html", 415, "unsupported_media_type"),
            (PDF, None, 415, "unsupported_media_type"),
            (b"MZ\x90\x00 not a pdf" * 20, "application/pdf", 415, "content_mismatch"),
            (b"RIFF" + b"\x00" * 500_001, "image/webp", 413, "file_too_large"),
            (JPEG + b"\x00" * 4_500_000, "image/jpeg", 413, "file_too_large"),
        ],
        ids=["empty", "zip", "html", "no type", "exe as pdf", "sticker over 500 KB", "over the upload cap"],
    )
    def test_a_file_meta_would_refuse_is_refused_before_anything_leaves(
        self,
        uploads: Uploads,
        graph_fake: GraphSimulator,
        body: bytes,
        content_type: str | None,
        status: int,
        code: str,
    ) -> None:
        result = uploads.post(body, content_type)
        assert result.status == status, result.body
        assert _error(result)["code"] == code
        assert [r for r in graph_fake.recorded() if r.endpoint == "upload"] == []
        assert uploads.kept() == {}

    def test_the_limit_and_the_accepted_types_are_named(self, uploads: Uploads) -> None:
        too_large = _error(uploads.post(b"RIFF" + b"\x00" * 500_001, "image/webp"))
        assert too_large["limit_bytes"] == 500_000
        unsupported = _error(uploads.post(b"x", "application/zip"))
        assert "application/pdf" in unsupported["accepted"]

    def test_a_multipart_body_without_a_file_part_is_a_400(self, uploads: Uploads) -> None:
        result = uploads.multipart(PDF, "application/pdf", name="attachment")
        assert result.status == 400 and _error(result)["field"] == "file"

    def test_metas_refusal_keeps_nothing(self, uploads: Uploads, graph_fake: GraphSimulator) -> None:
        graph_fake.fail_next(131053, on="upload")
        result = uploads.multipart(PDF, "application/pdf")
        assert result.status == 502 and _error(result)["graph_error"]["code"] == 131053
        assert uploads.kept() == {}


def test_media_is_never_uploaded_for_a_number_this_deployment_does_not_own(
    uploads: Uploads, graph_fake: GraphSimulator
) -> None:
    # (issue 10, point 5) a file uploaded for another deployment's number could only be sent from it
    result = uploads.post(JPEG, "image/jpeg", query="filename=flat.jpg&phone_number_id=999000111222333")
    assert result.status == 400, result.body
    assert _error(result)["field"] == "phone_number_id"
    assert graph_fake.recorded() == []
    assert uploads.kept() == {}
