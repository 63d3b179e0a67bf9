"""TFLM on the host: the ``tflite-micro`` wheel's interpreter, i.e. the kernels the ``tflm`` backend runs.

:func:`arena_bytes` measures the tensor arena TFLM allocates for a model (``print_allocations`` on fd 2);
the interpreter that runs the model gets an arena of exactly that size.
"""

from __future__ import annotations

import os
import re
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ModelError
from .common import check_input, read_model

ARENA_PROBE_BYTES = 1 << 22  # generous arena for the measuring interpreter
_ARENA_RE = re.compile(r"Arena allocation total (\d+) bytes")


def _interpreter(raw: bytes, path: Path, arena_size: int) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    try:
        return runtime.Interpreter.from_bytes(raw, arena_size=arena_size)
    except (RuntimeError, ValueError, struct.error) as e:  # struct.error: TFLM's Python schema on bad offsets
        raise ModelError(f"{path}: TFLM cannot load it with a {arena_size}-byte arena ({e})") from None


def arena_bytes(path: str | Path) -> int:
    """The tensor arena TFLM allocates for this model, in bytes (from ``print_allocations`` on fd 2).

    Raises:
        ModelError: no such file, TFLM refuses it, or it printed no arena total.
    """
    path, raw = read_model(path)
    interp = _interpreter(raw, path, ARENA_PROBE_BYTES)
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            interp.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    m = _ARENA_RE.search(text)
    if m is None:
        raise ModelError(f"{path}: TFLM printed no arena total (got {text[:200]!r})")
    return int(m.group(1))


class TFLMModel:
    """A .tflite loaded into TFLM with an arena of ``arena`` bytes (default: the measured :func:`arena_bytes`).

    Raises:
        ModelError: no such file, or TFLM refuses it.
    """

    def __init__(self, path: str | Path, arena: int | None = None) -> None:
        self.path, raw = read_model(path)
        self.arena = arena if arena is not None else arena_bytes(self.path)
        self._it = _interpreter(raw, self.path, self.arena)
        inp, out = self._it.get_input_details(0), self._it.get_output_details(0)
        self.input_dtype = np.dtype(inp["dtype"])
        self.input_shape = tuple(int(d) for d in inp["shape"])
        self.output_dtype = np.dtype(out["dtype"])
        self.output_shape = tuple(int(d) for d in out["shape"])

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw outputs (N, *output_shape[1:]) of N inputs already in the model's input dtype.

        Raises:
            ModelError: wrong dtype or shape of ``x``.
        """
        x = check_input(self.path, x, self.input_dtype, self.input_shape)
        res = np.empty((len(x), *self.output_shape[1:]), dtype=self.output_dtype)
        for i in range(len(x)):
            self._it.set_input(x[i:i + 1], 0)
            self._it.invoke()
            res[i] = self._it.get_output(0)[0]
        return res


def run(path: str | Path, x_int8: np.ndarray) -> np.ndarray:
    """Run each input through TFLM with an arena of the measured size: raw outputs (N, C)."""
    return TFLMModel(path).run(x_int8)
