"""Which failed inbound records are hidden for how long after a rate limit."""

from __future__ import annotations

from typing import Any

from whatsapp_crm.sqs.redelivery import MAX_VISIBILITY_SECONDS, delays_for_failures


def _record(message_id: str, group: str) -> dict[str, Any]:
    return {"messageId": message_id, "receiptHandle": f"rh-{message_id}", "attributes": {"MessageGroupId": group}}


def test_every_failed_record_of_a_delayed_group_gets_the_delay_and_nothing_else_does() -> None:
    # Given a batch where lead A hit the pair rate limit (its second record failed with it),
    # lead B failed for another reason and lead C succeeded
    records = [_record("1", "A"), _record("2", "A"), _record("3", "B"), _record("4", "C")]
    # When the delays are planned
    plan = delays_for_failures(records, failed_message_ids={"1", "2", "3"}, delay_by_group={"A": 16})
    # Then only A's failed records are hidden, for 16 seconds
    assert plan == {16: ["rh-1", "rh-2"]}


def test_delays_are_clamped_to_what_sqs_accepts() -> None:
    records = [_record("1", "A"), _record("2", "B")]
    plan = delays_for_failures(records, {"1", "2"}, {"A": 10**9, "B": -5})
    assert plan == {MAX_VISIBILITY_SECONDS: ["rh-1"], 0: ["rh-2"]}


def test_records_without_a_group_are_left_alone() -> None:
    records = [{"messageId": "1", "receiptHandle": "rh-1", "attributes": {}}]
    assert delays_for_failures(records, {"1"}, {"A": 6}) == {}
