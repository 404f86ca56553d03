"""POST /media's body: the file found in multipart or raw form, and Meta's rules applied before any upload."""

from __future__ import annotations

import pytest
from urllib3 import encode_multipart_formdata

from whatsapp_crm.media_upload import UploadRefusedError, check_upload, read_upload

PDF = b"%PDF-1.4\n" + b"x" * 100


def test_the_file_part_is_found_among_others_with_its_type_and_name() -> None:
    body, content_type = encode_multipart_formdata(
        [("note", "hello"), ("file", ("/home/dana/פרוספקט.pdf", PDF, "application/pdf"))]
    )
    upload = read_upload(body, content_type)
    assert (upload.content, upload.mime_type, upload.filename) == (PDF, "application/pdf", "פרוספקט.pdf")


def test_a_raw_body_takes_its_content_type_and_the_query_filename_without_a_path() -> None:
    upload = read_upload(PDF, "application/pdf; charset=binary", "../../etc/passwd.pdf")
    assert (upload.mime_type, upload.filename) == ("application/pdf", "passwd.pdf")


def test_aliases_are_meta_types() -> None:
    assert read_upload(b"\xff\xd8\xff" + b"0" * 10, "image/jpg").mime_type == "image/jpeg"


@pytest.mark.parametrize(
    ("content", "mime_type", "code"),
    [
        (b"", "application/pdf", "empty_file"),
        (PDF, "", "unsupported_media_type"),
        (PDF, "application/x-msdownload", "unsupported_media_type"),
        (b"not a png at all", "image/png", "content_mismatch"),
        (b"\x89PNG\r\n\x1a\n" + b"0" * 5_000_000, "image/png", "file_too_large"),
    ],
)
def test_what_meta_refuses_is_refused_here(content: bytes, mime_type: str, code: str) -> None:
    with pytest.raises(UploadRefusedError) as refused:
        check_upload(read_upload(content, mime_type), max_bytes=100_000_000)
    assert refused.value.code == code


def test_the_smaller_of_metas_limit_and_ours_applies() -> None:
    with pytest.raises(UploadRefusedError) as refused:
        check_upload(read_upload(PDF, "application/pdf"), max_bytes=50)
    assert refused.value.status == 413 and refused.value.details["limit_bytes"] == 50


def test_a_multipart_body_without_a_file_part_names_the_field() -> None:
    body, content_type = encode_multipart_formdata({"attachment": ("a.pdf", PDF, "application/pdf")})
    with pytest.raises(UploadRefusedError) as refused:
        read_upload(body, content_type)
    assert refused.value.details == {"field": "file"}
