"""What the interpreter runtimes share: reading a model file, checking an input batch against the model, and
running a batch one input at a time through a batch-1 interpreter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ModelError


def read_model(path: str | Path) -> tuple[Path, bytes]:
    """The path and bytes of a model file.

    Raises:
        ModelError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    return path, path.read_bytes()


def check_input(path: Path, x: Any, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as an array when it is a batch (N, *shape[1:]) of ``dtype`` for a batch-1 model of input ``shape``.

    Raises:
        ModelError: wrong dtype, wrong shape, or a model whose input is not batch 1 (names the file).
    """
    x = np.asarray(x)
    if x.dtype != np.dtype(dtype):
        raise ModelError(f"{path}: the model takes {np.dtype(dtype).name} input, got {x.dtype.name}")
    if tuple(x.shape[1:]) != tuple(shape[1:]) or (len(shape) and shape[0] != 1):
        raise ModelError(f"{path}: the model's input shape is {tuple(shape)}; got a batch of shape {x.shape} "
                         "(expected (N, *input_shape[1:]) and a batch-1 model)")
    return x


def one_line(error: Exception) -> str:
    """An interpreter's (often multi-line) error message on one line."""
    return " ".join(str(error).split())


class BatchOfOne:
    """A batch-1 interpreter run over N inputs: subclasses set the I/O description and :meth:`_invoke`."""

    path: Path
    input_dtype: np.dtype
    input_shape: tuple[int, ...]
    output_dtype: np.dtype
    output_shape: tuple[int, ...]

    def _describe(self, inp: dict, out: dict) -> None:
        """The input and output dtype and shape from an interpreter's tensor details."""
        self.input_dtype = np.dtype(inp["dtype"])
        self.input_shape = tuple(int(d) for d in inp["shape"])
        self.output_dtype = np.dtype(out["dtype"])
        self.output_shape = tuple(int(d) for d in out["shape"])

    def _invoke(self, x1: np.ndarray) -> np.ndarray:
        """The output tensor (batch 1) for one input of batch 1."""
        raise NotImplementedError

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw outputs (N, *output_shape[1:]) of N inputs already in the model's input dtype.

        Raises:
            ModelError: wrong dtype or shape of ``x``.
        """
        x = check_input(self.path, x, self.input_dtype, self.input_shape)
        res = np.empty((len(x), *self.output_shape[1:]), dtype=self.output_dtype)
        for i in range(len(x)):
            res[i] = self._invoke(x[i:i + 1])[0]
        return res
