"""The Graph API fake on loopback: `graph_fake` (the simulator) and `graph_client` (a client pointed at it).

    def test_reply(graph_fake, function_env):
        function_env("ResponderFunction", **graph_fake.environment())
        ...
        assert graph_fake.sent_messages()[0]["to"] == "+972525551234"

`graph_fake` checks the test access token, so a handler must be run with WHATSAPP_ACCESS_TOKEN from
tests/conftest.py (the `aws` fixture's environment already sets it). Status webhooks are off here;
tests that want them construct GraphSimulator(webhook_url=..., app_secret=...) themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from conftest import TEST_ACCESS_TOKEN
from local.graph_simulator import GraphSimulator

if TYPE_CHECKING:
    from whatsapp_crm.graph import GraphClient


@pytest.fixture
def graph_fake() -> Iterator[GraphSimulator]:
    """A fresh Graph API simulator for one test, requiring the test access token."""
    with GraphSimulator(access_token=TEST_ACCESS_TOKEN) as simulator:
        yield simulator


@pytest.fixture
def graph_sleeps() -> list[float]:
    """Backoff delays the `graph_client` asked for; it never really sleeps."""
    return []


@pytest.fixture
def graph_client(graph_fake: GraphSimulator, graph_sleeps: list[float]) -> Iterator[GraphClient]:
    """A GraphClient on the simulator with the test token; backoff sleeps are recorded, not slept."""
    from whatsapp_crm.graph import GraphClient

    with GraphClient(TEST_ACCESS_TOKEN, base_url=graph_fake.base_url, sleep=graph_sleeps.append) as client:
        yield client
