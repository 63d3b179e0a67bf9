"""What the interpreter runtimes share: reading a model file and checking an input batch against the model."""

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
