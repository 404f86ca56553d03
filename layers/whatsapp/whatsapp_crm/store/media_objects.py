"""The private media bucket (S3): archived files in, 15-minute download links out.

The bucket is encrypted, blocks public access and expires objects after MEDIA_RETENTION_DAYS (template.yaml).
Objects are labelled with a Meta media type or application/octet-stream and always served as attachments:
a lead's file is something to download and look at, never something a browser runs in our name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from whatsapp_crm.aws_clients import LazyClient
from whatsapp_crm.errors import StoreUnavailableError

_CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=30,
    retries={"mode": "standard", "max_attempts": 3},
    signature_version="s3v4",
)


def _attachment(filename: str | None) -> str:
    if not filename:
        return "attachment"
    # RFC 6266 with RFC 5987 for any name (Hebrew included); the ASCII fallback drops what a header cannot hold.
    from urllib.parse import quote

    fallback = "".join(
        char if char.isascii() and char.isprintable() and char not in '"\\' else "_" for char in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class S3MediaObjects:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._lazy_client = LazyClient("s3", _CLIENT_CONFIG, client)

    @property
    def client(self) -> Any:
        return self._lazy_client.get()

    def put(self, key: str, body: IO[bytes], *, content_type: str, sha256: str, metadata: Mapping[str, str]) -> None:
        extra = {
            "ContentType": content_type,
            "ContentDisposition": "attachment",
            "ServerSideEncryption": "AES256",
            "Metadata": {**metadata, "sha256": sha256},
        }
        body.seek(0)
        try:
            self.client.upload_fileobj(body, self.bucket, key, ExtraArgs=extra)
        except (ClientError, BotoCoreError) as error:
            raise StoreUnavailableError(f"S3 refused the media object: {type(error).__name__}") from error

    def download_origin(self) -> str | None:
        """Where this bucket's download links point (scheme://host[:port]), found by signing one: the bucket's
        virtual host in AWS, the endpoint's on moto. Signing is local (no request); None when it cannot be."""
        from urllib.parse import urlsplit

        try:
            url = str(
                self.client.generate_presigned_url(
                    "get_object", Params={"Bucket": self.bucket, "Key": "origin"}, ExpiresIn=60
                )
            )
        except (ClientError, BotoCoreError):
            return None
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("https", "http") and parts.netloc else None

    def download_url(self, key: str, *, seconds: int, content_type: str, filename: str | None = None) -> str:
        """A presigned GET valid `seconds`; the response is labelled and offered as an attachment."""
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": _attachment(filename),
                },
                ExpiresIn=seconds,
            )
        )
