"""The wiring module: a double handed in replaces exactly its port, for one invocation; real adapters are
built once per key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from whatsapp_crm import wiring
from whatsapp_crm.clock import utc_now
from whatsapp_crm.settings import SendSettings, WebhookSettings

PORTS_AND_DOUBLES = [
    (wiring.WebhookPorts, wiring.WebhookDoubles),
    (wiring.SendPorts, wiring.SendDoubles),
    (wiring.ResponderPorts, wiring.ResponderDoubles),
    (wiring.ConversationsPorts, wiring.ConversationsDoubles),
    (wiring.TemplatesPorts, wiring.TemplatesDoubles),
    (wiring.MediaPorts, wiring.MediaDoubles),
    (wiring.EventsPorts, wiring.EventsDoubles),
]


@pytest.mark.parametrize(("ports", "doubles"), PORTS_AND_DOUBLES, ids=lambda value: value.__name__)
def test_every_double_a_function_accepts_is_one_of_its_ports(ports: type[Any], doubles: type[Any]) -> None:
    # A keyword `handle()` accepts but no port reads would be ignored silently (send's `refusals` once was).
    port_names = {name for name, value in vars(ports).items() if isinstance(value, wiring._Port)}
    assert set(doubles.__annotations__) == port_names


def test_a_double_replaces_its_port_for_the_invocations_inside_only() -> None:
    settings = SendSettings(table_name="conversations")
    frozen = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

    def clock() -> datetime:
        return frozen

    with wiring.handed_in({"clock": clock, "sender": None}):
        assert wiring.SendPorts(settings).clock is clock
        # None: the real adapter, as when nothing is handed in.
        assert wiring.SendPorts(settings).limiter is wiring.rate_counter("conversations")
    assert wiring.SendPorts(settings).clock is utc_now


def test_real_adapters_are_built_once_per_key() -> None:
    settings = WebhookSettings(table_name="conversations", inbound_queue_url="https://sqs.example/inbound.fifo")
    first, again = wiring.WebhookPorts(settings), wiring.WebhookPorts(settings)
    assert first.store is again.store
    assert first.store is not wiring.conversation_store("another-table")
    # No dead-letter queue configured: the webhook has none to set parts aside in.
    assert first.dead_letters is None
