"""Fixtures shared by every test level: settings caches, AWS on moto's server, template resources."""

from __future__ import annotations

import io
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The Graph API fake (`graph_fake`, `graph_client`) for every test level that may open sockets.
pytest_plugins = ["support.graph_fixtures"]

logging.getLogger("werkzeug").setLevel(logging.WARNING)

# Nothing in tests may reach real AWS: fake credentials and a region before anything builds a client.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ["AWS_DEFAULT_REGION"] = "eu-west-1"
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "WhatsAppCrmTests")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "whatsapp-crm-tests")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_DEV", "false")

TEST_APP_SECRET = "test-app-secret-not-for-production"
TEST_VERIFY_TOKEN = "test-verify-token"
TEST_ACCESS_TOKEN = "EAAG-test-token-never-logged"


TESTS_DIR = Path(__file__).parent
LEVELS = ("unit", "integration", "e2e", "reliability")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test carries the marker of its level, the folder it sits in, so `-m <level>` selects it."""
    for item in items:
        level = item.path.relative_to(TESTS_DIR).parts[0]
        if level not in LEVELS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of tests/{{{','.join(LEVELS)}}}/")
        item.add_marker(level)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    from aws_lambda_powertools.utilities import parameters

    from whatsapp_crm.settings import reset_settings

    reset_settings()
    parameters.clear_caches()
    yield
    reset_settings()
    parameters.clear_caches()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server on a free loopback port, for the whole session; boto3 reaches it via AWS_ENDPOINT_URL.

    With the local stack's DynamoDB fidelity patch (local/moto_fidelity.py): without its lock, moto checks a
    condition and writes on different request threads, so eight racing claims could all be granted when the
    machine is loaded (test_only_one_of_many_concurrent_consumers_wins_the_claim failed that way).
    """
    from moto.server import ThreadedMotoServer

    from local.moto_fidelity import install

    install()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    previous = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    yield endpoint
    if previous is None:
        os.environ.pop("AWS_ENDPOINT_URL", None)
    else:
        os.environ["AWS_ENDPOINT_URL"] = previous
    server.stop()


@dataclass
class AwsStack:
    """Resources from template.yaml, created fresh for one test."""

    session: Any
    created: Any
    template: dict[str, Any]

    def ref(self, logical_id: str) -> str:
        return str(self.created.refs[logical_id])

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def environment(self, logical_id: str, **overrides: str) -> dict[str, str]:
        from local.template import function_environment

        env = function_environment(self.template, logical_id, self.created)
        env.update(
            WHATSAPP_APP_SECRET=TEST_APP_SECRET,
            WHATSAPP_VERIFY_TOKEN=TEST_VERIFY_TOKEN,
            WHATSAPP_ACCESS_TOKEN=TEST_ACCESS_TOKEN,
            POWERTOOLS_TRACE_DISABLED="true",
        )
        env.update(overrides)
        return env


@pytest.fixture
def aws(moto_endpoint: str) -> AwsStack:
    import boto3

    from local.template import create_resources, load_template

    session = boto3.session.Session(region_name="eu-west-1")
    template = load_template()
    prefix = f"t{uuid.uuid4().hex[:10]}"
    created = create_resources(session, prefix, template)
    return AwsStack(session=session, created=created, template=template)


@pytest.fixture
def function_env(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Apply a function's template environment (resolved to this test's resources) to os.environ."""

    def apply(logical_id: str, **overrides: str) -> dict[str, str]:
        env = aws.environment(logical_id, **overrides)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        from whatsapp_crm.settings import reset_settings

        reset_settings()
        return env

    return apply


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What the shared Powertools logger writes during the test (its handler keeps the stream it was
    created with, which pytest's capture fixtures do not see)."""
    from whatsapp_crm.observability import logger

    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    handler.setStream(previous)  # type: ignore[attr-defined]
