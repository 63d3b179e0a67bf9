"""Static activation memory planning from tensor lifetimes (the native backend's arena).

Each buffer lives from the op step that writes it to the last step that reads it. Buffers are placed so
that no two buffers alive at the same step overlap; three placements are tried (greedy largest first, as
TFLM's GreedyMemoryPlanner; greedy in time order; two-ended in time order, optimal on chains) and the
smallest arena is kept. The plan is compared with the liveness lower bound: the largest
sum of the sizes of the buffers alive at one step, which no placement can beat.

:func:`plan_steps` turns a lowered program into buffers: step ``i`` reads every tensor in its ``inputs``
and writes every tensor in its ``outputs``; a tensor lives from the step that writes it (step 0 for a
graph input) to the last step that reads it (one past the last step for a graph output); an ``alias``
step's output shares its input's buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


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


def _conflicts(buffers: Sequence[Buffer], offsets: list[int | None], i: int, alignment: int) -> list[tuple[int, int]]:
    """The arena intervals taken by placed buffers alive at the same time as buffer ``i``."""
    return sorted(
        (o, o + _align(buffers[j].size, alignment))
        for j, o in enumerate(offsets)
        if o is not None and buffers[i].overlaps_in_time(buffers[j])
    )


def _lowest_fit(taken: list[tuple[int, int]], size: int) -> int:
    candidate = 0
    for start, end in taken:
        if candidate + size <= start:
            break
        candidate = max(candidate, end)
    return candidate


def _highest_fit(taken: list[tuple[int, int]], size: int, limit: int, alignment: int) -> int | None:
    """The highest aligned offset with ``offset + size <= limit`` free of ``taken``, or None."""
    starts = [limit - size] + [s - size for s, _ in taken]
    for o in sorted({(c // alignment) * alignment for c in starts if c >= 0}, reverse=True):
        if o + size <= limit and all(o + size <= s or e <= o for s, e in taken):
            return o
    return None


def _greedy(buffers: Sequence[Buffer], order: list[int], alignment: int) -> list[int]:
    offsets: list[int | None] = [None] * len(buffers)
    for i in order:
        offsets[i] = _lowest_fit(_conflicts(buffers, offsets, i, alignment), _align(buffers[i].size, alignment))
    return [int(o) for o in offsets if o is not None]


def _two_ended(buffers: Sequence[Buffer], alignment: int) -> list[int]:
    """In time order, alternately at the bottom and at the top of an arena the size of the lower bound
    (optimal on chains); a buffer that does not fit at the top goes to the lowest free offset."""
    limit = lower_bound([Buffer(b.name, _align(b.size, alignment), b.first, b.last) for b in buffers])
    offsets: list[int | None] = [None] * len(buffers)
    order = sorted(range(len(buffers)), key=lambda i: (buffers[i].first, buffers[i].last, i))
    for n, i in enumerate(order):
        size = _align(buffers[i].size, alignment)
        taken = _conflicts(buffers, offsets, i, alignment)
        top = _highest_fit(taken, size, limit, alignment) if n % 2 else None
        offsets[i] = top if top is not None else _lowest_fit(taken, size)
    return [int(o) for o in offsets if o is not None]


def place(buffers: Sequence[Buffer], alignment: int = 4) -> tuple[list[int], int]:
    """Place the buffers: the smallest arena of three strategies (greedy by size as TFLM's planner,
    greedy in time order, two-ended in time order).

    Args:
        buffers: the blocks to place.
        alignment: every offset is a multiple of this; sizes are rounded up to it.

    Returns:
        The offset of each buffer (same order as ``buffers``) and the arena size in bytes.
    """
    by_size = sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, buffers[i].first, i))
    by_time = sorted(range(len(buffers)), key=lambda i: (buffers[i].first, i))
    plans = [_greedy(buffers, by_size, alignment), _greedy(buffers, by_time, alignment),
             _two_ended(buffers, alignment)]
    arenas = [max((o + _align(b.size, alignment) for o, b in zip(offsets, buffers, strict=True)), default=0)
              for offsets in plans]
    best = arenas.index(min(arenas))
    return plans[best], arenas[best]


# ---- from a lowered program to a memory plan --------------------------------------------------------------------

class Lifetime(Protocol):
    """What the planner reads from a step (``ops.Step`` has it)."""

    @property
    def inputs(self) -> Sequence[int]: ...

    @property
    def outputs(self) -> Sequence[int]: ...

    @property
    def alias(self) -> bool: ...


class SizedTensor(Protocol):
    """What the planner reads from a tensor (``core.graph.Tensor`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def nbytes(self) -> int: ...


@dataclass
class MemoryPlan:
    """Where each activation tensor lives in the static arena."""

    arena_bytes: int
    lower_bound: int  # max over op steps of the bytes of the buffers alive at that step
    offsets: dict[int, int]  # tensor index -> byte offset in the arena
    buffers: list[Buffer] = field(default_factory=list)
    buffer_offsets: list[int] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"arena_bytes": self.arena_bytes, "lower_bound_bytes": self.lower_bound,
                "ratio": round(self.arena_bytes / self.lower_bound, 4) if self.lower_bound else 1.0}


def plan_steps(steps: Sequence[Lifetime], tensors: Sequence[SizedTensor], graph_inputs: Sequence[int],
               graph_outputs: Sequence[int], alignment: int = 4, keep_inputs: bool = False) -> MemoryPlan:
    """Plan the arena of a lowered program: one buffer per activation tensor, alias outputs sharing theirs.

    Args:
        steps: the program's steps in run order; step ``i`` reads ``inputs`` and writes ``outputs`` at ``i``.
        tensors: indexed by tensor index: each tensor's name and size in bytes.
        graph_inputs: tensors written before step 0 (alive from step 0).
        graph_outputs: tensors read after the last step (alive until ``len(steps)``).
        alignment: every offset is a multiple of this.
        keep_inputs: the graph inputs stay alive until the end too (no later tensor reuses their bytes: the
            runner keeps the loaded input there between runs).

    Returns:
        The plan: arena size, lower bound, the offset of every tensor touched, the buffers.
    """
    root: dict[int, int] = {}

    def find(t: int) -> int:
        while root.get(t, t) != t:
            t = root[t]
        return t

    for s in steps:
        if s.alias:
            root[find(s.outputs[0])] = find(s.inputs[0])
    touched: set[int] = set()
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    size: dict[int, int] = {}

    def touch(t: int, step: int) -> None:
        touched.add(t)
        r = find(t)
        first[r] = min(first.get(r, step), step)
        last[r] = max(last.get(r, step), step)
        size[r] = max(size.get(r, 0), tensors[t].nbytes)

    for t in graph_inputs:
        touch(t, 0)
    for i, s in enumerate(steps):
        for t in [*s.inputs, *s.outputs]:
            if t >= 0:
                touch(t, i)
    for t in [*graph_outputs, *(graph_inputs if keep_inputs else ())]:
        touch(t, len(steps))
    roots = sorted(size)
    buffers = [Buffer(tensors[r].name, size[r], first[r], last[r]) for r in roots]
    offs, arena = place(buffers, alignment)
    by_root = dict(zip(roots, offs, strict=True))
    offsets = {t: by_root[find(t)] for t in sorted(touched)}
    return MemoryPlan(arena, lower_bound(buffers), offsets, buffers, offs)
