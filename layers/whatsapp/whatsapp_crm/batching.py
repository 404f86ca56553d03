"""Cutting a list into the batches an AWS batch call accepts (a count and a byte limit per call)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence


def batches_within[Item](
    items: Sequence[Item], size_of: Callable[[Item], int], max_items: int, max_bytes: int
) -> Iterator[list[Item]]:
    """Consecutive groups, in order, of at most `max_items` items and `max_bytes` by `size_of`. An item larger
    than `max_bytes` alone still gets a group of its own: the call itself says whether it is too large."""
    batch: list[Item] = []
    size = 0
    for item in items:
        item_size = size_of(item)
        if batch and (len(batch) == max_items or size + item_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch
