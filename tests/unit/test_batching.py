"""Batches for AWS batch calls (SendMessageBatch, PutEvents): every item sent once, in order, within limits."""

from whatsapp_crm.batching import batches_within


def test_a_count_limit_cuts_the_list_in_order_and_loses_nothing() -> None:
    # Given 23 items and calls that take at most 10
    items = list(range(23))

    # When they are cut into batches
    batches = list(batches_within(items, lambda _: 1, max_items=10, max_bytes=1_000))

    # Then three calls carry every item once, in order
    assert [len(batch) for batch in batches] == [10, 10, 3]
    assert [item for batch in batches for item in batch] == items


def test_a_byte_limit_starts_a_new_batch_before_it_would_be_passed() -> None:
    sizes = [40, 40, 30, 90, 10]

    batches = list(batches_within(sizes, lambda size: size, max_items=10, max_bytes=100))

    assert batches == [[40, 40], [30], [90, 10]]
    assert all(sum(batch) <= 100 for batch in batches)


def test_an_item_larger_than_the_limit_goes_alone_so_the_call_can_refuse_it_by_itself() -> None:
    batches = list(batches_within(["a", "huge", "b"], len, max_items=10, max_bytes=3))

    assert batches == [["a"], ["huge"], ["b"]]


def test_nothing_to_send_makes_no_call() -> None:
    assert list(batches_within([], len, max_items=10, max_bytes=3)) == []
