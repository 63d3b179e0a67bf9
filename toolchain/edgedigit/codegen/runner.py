"""What every backend's runner reports about its model (``edgedigit_model_info_t``), computed once here.

The runner templates (``firmware_templates/<backend>/``) fill their info struct from :func:`info_context`;
:func:`crc32` is the checksum the firmware computes at boot over its model data (zlib's CRC-32, which the
protocol's C computes four bits at a time), so the host can compute the figure a correct firmware reports.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..core.int8 import IoSpec
from .render import c_float

INPUT_KIND_MACROS = {"pixels": "EDGEDIGIT_INPUT_PIXELS", "int8": "EDGEDIGIT_INPUT_INT8",
                     "uint8": "EDGEDIGIT_INPUT_UINT8"}
SCORES_MACROS = {"dequantized": "EDGEDIGIT_SCORES_DEQUANTIZED", "softmax": "EDGEDIGIT_SCORES_SOFTMAX",
                 "mse": "EDGEDIGIT_SCORES_MSE"}
C_TYPES = {"int8_t": np.int8, "uint8_t": np.uint8, "int16_t": np.int16, "uint16_t": np.uint16,
           "int32_t": np.int32, "uint32_t": np.uint32}


def c_string(text: str) -> str:
    """``text`` as a C string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def info_context(spec: IoSpec, variant: str, model_id: str | None) -> dict[str, Any]:
    """The template values of a runner's ``edgedigit_model_info_t`` for a model of I/O ``spec``.

    Args:
        spec: the model's I/O contract (``core.int8.io_spec``).
        variant: the variant name (or the .tflite's stem).
        model_id: what ``profile%`` reports as the model (an MLPerf Tiny id); default the variant.
    """
    return {
        "variant_c": c_string(variant),
        "model_id_c": c_string(model_id or variant),
        "image": spec.image,
        "input_kind": spec.input_kind,
        "input_kind_macro": INPUT_KIND_MACROS[spec.input_kind],
        "scores_macro": SCORES_MACROS[spec.scores],
        "input_bytes": spec.input_bytes,
        "num_outputs": spec.outputs,
        "input_scale": float(spec.input_scale),
        "input_scale_c": c_float(spec.input_scale),
        "input_zero_point": spec.input_zero_point,
        "output_scale": float(spec.output_scale),
        "output_scale_c": c_float(spec.output_scale),
        "output_zero_point": spec.output_zero_point,
    }


def array_bytes(ctype: str, values: Any) -> bytes:
    """The bytes of a C array ``static const <ctype> a[] = {values}`` on a little-endian target."""
    return np.ascontiguousarray(np.asarray(values).astype(np.dtype(C_TYPES[ctype]).newbyteorder("<"))).tobytes()


def crc32(regions: Iterable[bytes]) -> int:
    """CRC-32 over the model's data regions in order: the figure ``m-ed-model-crc32`` reports."""
    crc = 0
    for r in regions:
        crc = zlib.crc32(r, crc)
    return crc
