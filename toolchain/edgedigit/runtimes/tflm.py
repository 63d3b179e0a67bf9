"""TFLM on the host: the ``tflite-micro`` wheel's interpreter, i.e. the kernels the ``tflm`` backend runs.

:func:`arena_bytes` measures the tensor arena TFLM allocates for a model (``print_allocations`` on fd 2);
the interpreter that runs the model gets an arena of exactly that size.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ModelError
from .common import BatchOfOne, read_model

ARENA_PROBE_BYTES = 1 << 22  # generous arena for the measuring interpreter
ARENA_MAX_BYTES = 1 << 27  # the search gives up beyond this (a model TFLM cannot allocate at all)
ARENA_ALIGN = 16  # TFLM aligns its allocations to 16 bytes: the search steps by that
_ARENA_RE = re.compile(r"Arena allocation total (\d+) bytes")


def _interpreter(raw: bytes, path: Path, arena_size: int) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    try:
        return runtime.Interpreter.from_bytes(raw, arena_size=arena_size)
    except (RuntimeError, ValueError, struct.error) as e:  # struct.error: TFLM's Python schema on bad offsets
        raise ModelError(f"{path}: TFLM cannot load it with a {arena_size}-byte arena ({e})") from None


@contextlib.contextmanager
def _captured_stderr() -> Iterator[Any]:
    """Redirect fd 2 (where TFLM's C++ prints) into a temporary file; yields it."""
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield capture
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def reported_arena_bytes(path: str | Path) -> int:
    """TFLM's own allocation report for this model (``print_allocations``): a lower bound of the arena.

    Raises:
        ModelError: no such file, TFLM refuses it, or it printed no arena total.
    """
    path, raw = read_model(path)
    interp = _interpreter(raw, path, ARENA_PROBE_BYTES)
    with _captured_stderr() as capture:
        interp.print_allocations()
        sys.stderr.flush()
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    m = _ARENA_RE.search(text)
    if m is None:
        raise ModelError(f"{path}: TFLM printed no arena total (got {text[:200]!r})")
    return int(m.group(1))


def _runs(raw: bytes, size: int) -> bool:
    """Whether TFLM allocates the model in ``size`` bytes and invokes it once (on zeros).

    Each probe runs in a forked child: with some models (an LSTM) the wheel's TFLM crashes the process on
    an arena that is too small instead of failing, and a crash must only mean "too small".
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: report by exit status, never return into the caller's code
        ok = False
        try:
            ok = _runs_here(raw, size)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _runs_here(raw: bytes, size: int) -> bool:
    from tflite_micro.python.tflite_micro import runtime

    with _captured_stderr():  # TFLM prints every failed allocation
        try:
            it = runtime.Interpreter.from_bytes(raw, arena_size=size)
            inp = it.get_input_details(0)
            it.set_input(np.zeros(inp["shape"], inp["dtype"]), 0)
            it.invoke()
        except (RuntimeError, ValueError, struct.error):
            return False
    return True


def arena_bytes(path: str | Path) -> int:
    """The smallest arena (a multiple of 16 bytes) with which TFLM allocates and invokes this model.

    Starts at TFLM's report (:func:`reported_arena_bytes`), doubles until the model runs, then bisects.

    Raises:
        ModelError: no such file, TFLM refuses it, or it does not run even with 128 MiB.
    """
    path, raw = read_model(path)
    low = reported_arena_bytes(path)
    low -= low % ARENA_ALIGN
    if _runs(raw, low):
        return low
    high = low * 2 + ARENA_ALIGN
    while not _runs(raw, high):
        if high >= ARENA_MAX_BYTES:
            raise ModelError(f"{path}: TFLM cannot allocate and invoke it even with a {high:,}-byte arena")
        low, high = high, high * 2
    while high - low > ARENA_ALIGN:  # low fails, high runs
        mid = (low + high) // 2 // ARENA_ALIGN * ARENA_ALIGN
        if mid in (low, high):
            break
        low, high = (low, mid) if _runs(raw, mid) else (mid, high)
    return high


class TFLMModel(BatchOfOne):
    """A .tflite loaded into TFLM with an arena of ``arena`` bytes (default: the measured :func:`arena_bytes`).

    Raises:
        ModelError: no such file, or TFLM refuses it.
    """

    def __init__(self, path: str | Path, arena: int | None = None) -> None:
        self.path, raw = read_model(path)
        self.arena = arena if arena is not None else arena_bytes(self.path)
        self._it = _interpreter(raw, self.path, self.arena)
        self._describe(self._it.get_input_details(0), self._it.get_output_details(0))

    def _invoke(self, x1: np.ndarray) -> np.ndarray:
        self._it.set_input(x1, 0)
        self._it.invoke()
        return self._it.get_output(0)


def run(path: str | Path, x_int8: np.ndarray) -> np.ndarray:
    """Run each input through TFLM with an arena of the measured size: raw outputs (N, C)."""
    return TFLMModel(path).run(x_int8)
