"""Static activation memory planning from tensor lifetimes (the native backend's arena).

Each buffer lives from the op step that writes it to the last step that reads it. Buffers are placed
greedily, largest first, at the lowest offset where they overlap no buffer alive at the same time (the
strategy of TFLM's GreedyMemoryPlanner). The plan is compared with the liveness lower bound: the largest
sum of the sizes of the buffers alive at one step, which no placement can beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Buffer:
    """One block of the arena: ``size`` bytes alive from step ``first`` to step ``last`` (inclusive)."""

    name: str
    size: int
    first: int
    last: int

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


def _align(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def lower_bound(buffers: Sequence[Buffer]) -> int:
    """The largest total size of the buffers alive at one step (unaligned bytes)."""
    if not buffers:
        return 0
    steps = range(min(b.first for b in buffers), max(b.last for b in buffers) + 1)
    return max(sum(b.size for b in buffers if b.first <= s <= b.last) for s in steps)


def place(buffers: Sequence[Buffer], alignment: int = 4) -> tuple[list[int], int]:
    """Greedy-by-size placement.

    Args:
        buffers: the blocks to place.
        alignment: every offset is a multiple of this; sizes are rounded up to it.

    Returns:
        The offset of each buffer (same order as ``buffers``) and the arena size in bytes.
    """
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, buffers[i].first, i))
    offsets: list[int | None] = [None] * len(buffers)
    for i in order:
        b = buffers[i]
        taken = sorted(
            (offsets[j], offsets[j] + _align(buffers[j].size, alignment))
            for j in range(len(buffers))
            if offsets[j] is not None and b.overlaps_in_time(buffers[j])
        )
        size = _align(b.size, alignment)
        candidate = 0
        for start, end in taken:
            if candidate + size <= start:
                break
            candidate = max(candidate, end)
        offsets[i] = candidate
    placed = [int(o) for o in offsets if o is not None]
    arena = max((o + _align(b.size, alignment) for o, b in zip(placed, buffers, strict=True)), default=0)
    return placed, arena
