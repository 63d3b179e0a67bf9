"""Host runtimes for an int8 .tflite: LiteRT reference kernels (the reference) and TFLM's real kernels.

Every runner has one signature: ``run_<name>(tflite_path, x) -> np.ndarray (N, C)`` where ``x`` holds N
inputs already in the model's input dtype (int8 images from ``edgedigit.quantize.quantize_images`` for
the int8 models) and the result is the raw output tensor per image (int8 for int8 models). ``RUNTIMES``
maps a name to its runner; add an entry to add a runtime.
"""

from __future__ import annotations

import os
import re
import struct
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ModelError
from .native_host import run_native

ARENA_PROBE_BYTES = 1 << 22  # generous arena for the measuring interpreter
_ARENA_RE = re.compile(r"Arena allocation total (\d+) bytes")


def _check_input(path: Path, x: np.ndarray, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.dtype(dtype):
        raise ModelError(f"{path}: the model takes {np.dtype(dtype).name} input, got {x.dtype.name}")
    if tuple(x.shape[1:]) != tuple(shape[1:]) or (len(shape) and shape[0] != 1):
        raise ModelError(f"{path}: the model's input shape is {tuple(shape)}; got a batch of shape {x.shape} "
                         "(expected (N, *input_shape[1:]) and a batch-1 model)")
    return x


def _read(path: str | Path) -> tuple[Path, bytes]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    return path, path.read_bytes()


def run_litert(tflite_path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run each input through LiteRT's reference kernels (``OpResolverType.BUILTIN_REF``), one at a time."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    path, raw = _read(tflite_path)
    try:
        interp = Interpreter(model_content=raw, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"{path}: LiteRT cannot load it ({e})") from None
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    x = _check_input(path, x, inp["dtype"], tuple(int(d) for d in inp["shape"]))
    res = np.empty((len(x), *out["shape"][1:]), dtype=out["dtype"])
    for i in range(len(x)):
        interp.set_tensor(inp["index"], x[i:i + 1])
        interp.invoke()
        res[i] = interp.get_tensor(out["index"])[0]
    return res


def _tflm(raw: bytes, path: Path, arena_size: int) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    try:
        return runtime.Interpreter.from_bytes(raw, arena_size=arena_size)
    except (RuntimeError, ValueError, struct.error) as e:  # struct.error: TFLM's Python schema on bad offsets
        raise ModelError(f"{path}: TFLM cannot load it with a {arena_size}-byte arena ({e})") from None


def tflm_arena_bytes(tflite_path: str | Path) -> int:
    """The tensor arena TFLM allocates for this model, in bytes (from ``print_allocations`` on fd 2)."""
    path, raw = _read(tflite_path)
    interp = _tflm(raw, path, ARENA_PROBE_BYTES)
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


def run_tflm(tflite_path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run each input through TFLM (the ``tflite-micro`` package) with an arena of the measured size."""
    path, raw = _read(tflite_path)
    interp = _tflm(raw, path, tflm_arena_bytes(path))
    inp, out = interp.get_input_details(0), interp.get_output_details(0)
    x = _check_input(path, x, inp["dtype"], tuple(int(d) for d in inp["shape"]))
    res = np.empty((len(x), *out["shape"][1:]), dtype=out["dtype"])
    for i in range(len(x)):
        interp.set_input(x[i:i + 1], 0)
        interp.invoke()
        res[i] = interp.get_output(0)[0]
    return res


def run_keras(model: Any, images: np.ndarray) -> np.ndarray:
    """The float model on uint8 images (scaled by 1/255): float32 scores (N, C)."""
    x = np.asarray(images, np.float32) / 255.0
    return np.asarray(model.predict(x, batch_size=256, verbose=0))


RUNTIMES: dict[str, Callable[[str | Path, np.ndarray], np.ndarray]] = {
    "litert": run_litert,
    "tflm": run_tflm,
    "native": run_native,
}
REFERENCE = "litert"
