"""The agent inbox page as InboxFunction serves it: files, configuration, headers, and what the code may not do."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from local.template import ROOT
from whatsapp_crm.inbox_page import (
    InboxConfigurationError,
    StaticSite,
    content_security_policy,
    page_config,
)
from whatsapp_crm.settings import InboxSettings

STATIC = ROOT / "functions" / "inbox" / "static"
COGNITO = {
    "domain": "https://agents-1234.auth.il-central-1.amazoncognito.com",
    "client_id": "5abc",
    "user_pool_id": "il-central-1_AbC",
    "region": "il-central-1",
}


def _settings(**values: Any) -> InboxSettings:
    return InboxSettings.model_validate(values)


def test_the_page_and_its_files_are_served_and_nothing_else() -> None:
    site = StaticSite(STATIC)
    page = site.find("/inbox")
    assert page is not None and page.content_type.startswith("text/html")
    assert site.find("/inbox/js/main.js") is not None
    assert site.find("/inbox/js/main.js").content_type.startswith("text/javascript")  # type: ignore[union-attr]
    for path in ["/inbox/../template.yaml", "/inbox/js/../../app.py", "/inbox/.hidden", "/other", "/inbox/x" * 50]:
        assert site.find(path) is None, path


def test_every_file_the_page_names_exists_and_comes_from_this_origin() -> None:
    site = StaticSite(STATIC)
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    references = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert references, "the page loads its script and styles"
    for reference in references:
        assert reference.startswith("/inbox/"), f"{reference} is not served by this stack"
        assert site.find(reference) is not None, reference
    imports = {
        match
        for script in STATIC.glob("js/*.js")
        for match in re.findall(r'from "\./([\w.]+)"', script.read_text(encoding="utf-8"))
    }
    assert imports and all((STATIC / "js" / name).exists() for name in imports)


def test_the_page_has_no_inline_code_and_its_scripts_never_write_markup() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "an inline script"
    assert re.search(r"\son[a-z]+=", html) is None, "an inline event handler"
    assert re.search(r"\sstyle=", html) is None and "<style" not in html
    assert '<html lang="he" dir="rtl">' in html
    for script in STATIC.glob("js/*.js"):
        code = script.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in code, f"{script.name} uses {sink}"


def test_the_policy_allows_this_origin_plus_the_api_and_sign_in_origins_only() -> None:
    local = content_security_policy(page_config(_settings(), lambda name: {}))
    assert "connect-src 'self';" in local
    assert "unsafe" not in local
    config = page_config(
        _settings(inbox_auth="JWT", inbox_config_parameter="/stack/inbox/config"),
        lambda name: {"api_base_url": "https://abc.execute-api.il-central-1.amazonaws.com/", "cognito": COGNITO},
    )
    policy = content_security_policy(config)
    assert (
        "connect-src 'self' https://abc.execute-api.il-central-1.amazonaws.com "
        "https://agents-1234.auth.il-central-1.amazoncognito.com;" in policy
    )
    assert config.api_base_url == "https://abc.execute-api.il-central-1.amazonaws.com"
    assert (
        config.auth == "cognito"
        and config.cognito is not None
        and config.cognito.scopes
        == [
            "openid",
            "email",
            "profile",
        ]
    )


def test_sign_in_needs_the_stacks_parameter_whole() -> None:
    with pytest.raises(InboxConfigurationError):
        page_config(_settings(inbox_auth="JWT"), lambda name: {})
    with pytest.raises(InboxConfigurationError):
        page_config(
            _settings(inbox_auth="JWT", inbox_config_parameter="/p"),
            lambda name: {"api_base_url": "https://x", "cognito": {"domain": "https://d"}},
        )


def test_the_page_files_are_plain_modules_with_no_build_step() -> None:
    # Nothing to compile: no package manifest, no bundler output, every script an ES module of this folder.
    inbox_dir = Path(STATIC).parent
    assert not (inbox_dir / "package.json").exists() and not (ROOT / "package.json").exists()
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert '<script type="module" src="/inbox/js/main.js"></script>' in html


def test_thumbnails_may_load_from_the_media_buckets_link_origin_and_nowhere_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3

    # Under `make test` the integration levels' moto server sets AWS_ENDPOINT_URL for the whole session, and
    # boto3 would sign the "AWS" client's links for moto too.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)

    from whatsapp_crm.store.media_objects import _CLIENT_CONFIG, S3MediaObjects

    # Given the bucket's links as the media route signs them (signing is local: no request is made)
    credentials = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret"}
    in_aws = boto3.client("s3", region_name="il-central-1", config=_CLIENT_CONFIG, **credentials)
    on_moto = boto3.client(
        "s3", region_name="il-central-1", endpoint_url="http://127.0.0.1:5123", config=_CLIENT_CONFIG, **credentials
    )
    aws_origin = S3MediaObjects("stack-mediabucket-1a2b", in_aws).download_origin()
    moto_origin = S3MediaObjects("stack-mediabucket-1a2b", on_moto).download_origin()
    # Then the origin is the one a presigned link of that bucket has
    assert aws_origin is not None and aws_origin.startswith("https://stack-mediabucket-1a2b.s3.")
    assert aws_origin.endswith(".amazonaws.com") and aws_origin.count("/") == 2
    assert moto_origin == "http://127.0.0.1:5123"
    # And the policy lets images (and audio/video) load from it, and nothing else talk to it
    policy = content_security_policy(page_config(_settings(), lambda name: {}), aws_origin)
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["img-src"] == f"'self' blob: data: {aws_origin}"
    assert directives["media-src"] == f"'self' blob: {aws_origin}"
    assert aws_origin not in directives["connect-src"]
    # A value that is not an origin is never written into the policy
    assert "evil" not in content_security_policy(None, "https://x.example; script-src evil")
