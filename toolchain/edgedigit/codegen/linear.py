"""C for the ``linear`` backend: the rfe-lr fixed-point model (COMMON contract 4) as one header + runner.

Python checks and formats the tables; the templates in ``firmware_templates/linear/`` only substitute.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..core.errors import ModelError
from ..core.int8 import IMAGE_BYTES, MAX_CLASSES, MIN_CLASSES
from .render import banner, c_float, render


def tables(model: Any) -> dict[str, np.ndarray | float]:
    """Check a fixed-point LR (``pixels``, ``weights``, ``bias``, ``scale``) and return its tables.

    Raises:
        ModelError: a table has the wrong dtype range or shape, or pixel indices are out of order/range.
    """
    try:
        pixels = np.asarray(model.pixels)
        weights = np.asarray(model.weights)
        bias = np.asarray(model.bias)
        scale = float(model.scale)
    except AttributeError as e:
        raise ModelError(f"not a fixed-point LR model (needs pixels, weights, bias, scale): {e}") from None
    if not all(np.issubdtype(a.dtype, np.integer) for a in (pixels, weights, bias)):
        raise ModelError(f"fixed-point LR tables must be integers: pixels {pixels.dtype}, weights {weights.dtype}, "
                         f"bias {bias.dtype}")
    if pixels.ndim != 1 or weights.ndim != 2 or weights.shape[1] != pixels.size or bias.shape != (weights.shape[0],):
        raise ModelError(f"fixed-point LR shapes do not agree: pixels {pixels.shape}, weights {weights.shape}, "
                         f"bias {bias.shape}")
    if not MIN_CLASSES <= weights.shape[0] <= MAX_CLASSES:
        raise ModelError(f"fixed-point LR has {weights.shape[0]} classes; the firmware handles "
                         f"{MIN_CLASSES}..{MAX_CLASSES}")
    if pixels.size and (pixels.min() < 0 or pixels.max() >= IMAGE_BYTES or np.any(np.diff(pixels) <= 0)):
        raise ModelError(f"fixed-point LR pixel indices must be unique, ascending and within 0..{IMAGE_BYTES - 1}")
    if weights.min(initial=0) < -128 or weights.max(initial=0) > 127:
        raise ModelError("fixed-point LR weights must fit int8")
    if bias.min(initial=0) < -(2**31) or bias.max(initial=0) > 2**31 - 1:
        raise ModelError("fixed-point LR biases must fit int32")
    worst = np.abs(bias.astype(np.int64)) + np.abs(weights.astype(np.int64)).sum(axis=1) * 255
    if worst.max() > 2**31 - 1:
        raise ModelError("fixed-point LR scores could overflow int32 on some image")
    if not np.isfinite(scale) or scale <= 0:
        raise ModelError(f"fixed-point LR scale must be a positive number, got {scale}")
    return {"pixels": pixels.astype(np.uint16), "weights": weights.astype(np.int8), "bias": bias.astype(np.int32),
            "scale": scale}


def tables_bytes(model: Any) -> int:
    """Bytes of the C tables (uint16 pixel indices, int8 weights, int32 biases)."""
    t = tables(model)
    return sum(np.asarray(t[k]).nbytes for k in ("pixels", "weights", "bias"))


def fingerprint(model: Any) -> str:
    """sha256 over the tables, for a model that did not come from a file."""
    t = tables(model)
    h = hashlib.sha256()
    for k in ("pixels", "weights", "bias"):
        h.update(np.ascontiguousarray(t[k]).tobytes())
    h.update(np.float64(t["scale"]).tobytes())
    return h.hexdigest()


def model_data(model: Any) -> list[bytes]:
    """The bytes the firmware's boot check covers, in its order: pixel indices (uint16), weights (int8),
    biases (int32), little-endian."""
    t = tables(model)
    return [np.ascontiguousarray(np.asarray(t[k]).astype(np.asarray(t[k]).dtype.newbyteorder("<"))).tobytes()
            for k in ("pixels", "weights", "bias")]


def generate(model: Any, *, variant: str, source_name: str, sha256: str | None = None,
             model_id: str | None = None) -> dict[str, str | bytes]:
    """Render the linear backend's sources for ``src/``.

    Args:
        model: a fixed-point LR (``edgedigit.linear.FixedPointLR`` or anything with the same four tables).
        variant: the variant name reported by the firmware.
        source_name: the model file named in the banners (e.g. ``models/rfe-lr/model_fixed.npz``).
        sha256: the model file's sha256 (reported by the firmware); default: a hash of the tables.
        model_id: what ``profile%`` reports as the model; default the variant.

    Returns:
        File name in ``src/`` -> content: ``edgedigit_lr_model.h``, ``edgedigit_model_linear.c`` (they
        include ``edgedigit_rom.h``, a runtime file every project has).
    """
    t = tables(model)
    sha = sha256 or fingerprint(model)
    ctx = {
        "banner_c": banner(source_name, sha, "c"),
        "variant": variant,
        "model_id": model_id or variant,
        "sha256": sha,
        "num_classes": int(t["weights"].shape[0]),
        "num_features": int(t["pixels"].size),
        "pixels": t["pixels"],
        "weights": t["weights"],
        "bias": t["bias"],
        "scale_c": c_float(t["scale"]),
        "scale_repr": repr(float(t["scale"])),
    }
    return {
        "edgedigit_lr_model.h": render("linear/edgedigit_lr_model.h.j2", **ctx),
        "edgedigit_model_linear.c": render("linear/edgedigit_model_linear.c.j2", **ctx),
    }
