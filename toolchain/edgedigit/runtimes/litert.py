"""LiteRT (``ai-edge-litert``) on the host, one image per invoke (the models have a batch-1 input).

Two kernel sets: the reference kernels (``OpResolverType.BUILTIN_REF``), which are the reference ``validate``
compares every other int8 runtime with, and the builtin optimized kernels (``OpResolverType.BUILTIN``) on
one thread, which is what ``bench host`` times as "LiteRT".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ModelError
from .common import BatchOfOne, one_line, read_model


class LiteRTModel(BatchOfOne):
    """A .tflite loaded into a LiteRT interpreter.

    Args:
        path: the model file.
        reference: True for the reference kernels, False for the builtin optimized ones.
        threads: interpreter threads (None: LiteRT's default).

    Raises:
        ModelError: no such file, or LiteRT refuses it (the message is one line naming the file).
    """

    def __init__(self, path: str | Path, *, reference: bool = True, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.path, raw = read_model(path)
        resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.BUILTIN
        options: dict[str, Any] = {} if threads is None else {"num_threads": threads}
        try:
            self._it = Interpreter(model_content=raw, experimental_op_resolver_type=resolver, **options)
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{self.path}: LiteRT cannot load it ({one_line(e)})") from None
        inp, out = self._it.get_input_details()[0], self._it.get_output_details()[0]
        self._in, self._out = inp["index"], out["index"]
        self._describe(inp, out)

    def _invoke(self, x1: np.ndarray) -> np.ndarray:
        self._it.set_tensor(self._in, x1)
        self._it.invoke()
        return self._it.get_tensor(self._out)


def run_reference(path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run each input through LiteRT's reference kernels: raw outputs (N, C)."""
    return LiteRTModel(path, reference=True).run(x)


def run_optimized(path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run each input through LiteRT's builtin optimized kernels on one thread: raw outputs (N, C)."""
    return LiteRTModel(path, reference=False, threads=1).run(x)
