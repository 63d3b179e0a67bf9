"""The int8 I/O contract between the host, the generated firmware and the serial protocol.

Any model whose input is int8 or uint8 and whose output is int8 (each quantized per tensor) has an
:class:`IoSpec` (:func:`io_spec`): the bytes the device receives per inference, the raw outputs it returns,
their quantization, and how the MLPerf ``m-results`` scores are formed from them. The MNIST digit
classifiers are one case of it: a 28 x 28 image of raw pixels 0..255 (``IMAGE_BYTES``) with 2..``MAX_CLASSES``
outputs is fed as raw pixels through the input table (``input_lut``), exactly as the firmware does it; every
other model receives its input tensor's bytes as they are (int8 or uint8, as MLPerf Tiny's runner sends them).
``EDGEDIGIT_IMAGE_BYTES`` and ``EDGEDIGIT_MAX_CLASSES`` in ``firmware_templates/runtime/edgedigit_model.h``
must equal these constants (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ModelError

IMAGE_SIDE = 28
IMAGE_BYTES = IMAGE_SIDE * IMAGE_SIDE  # raw uint8 pixels of one image
INPUT_SHAPE = (1, IMAGE_SIDE, IMAGE_SIDE)  # the batch-1 input of every neural variant
MIN_CLASSES = 2
MAX_CLASSES = 16  # the firmware's output buffer


def check_classes(classes: int, where: str) -> int:
    """``classes`` if the firmware can report that many outputs (2..16).

    Raises:
        ModelError: outside 2..16 (names ``where``).
    """
    if not MIN_CLASSES <= classes <= MAX_CLASSES:
        raise ModelError(f"{where}: {classes} outputs; the firmware reports {MIN_CLASSES}..{MAX_CLASSES} classes")
    return classes


def is_classifier_io(input_size: int, output_size: int) -> bool:
    """True when a model takes one 28 x 28 image and gives 2..16 class scores (the firmware runner's shape)."""
    return input_size == IMAGE_BYTES and MIN_CLASSES <= output_size <= MAX_CLASSES


def input_lut(scale: float, zero_point: int) -> np.ndarray:
    """int8 input value of each raw pixel 0..255.

    ``lut[p] = clip(round_half_away_from_zero(p / 255 / scale) + zero_point, -128, 127)`` in float64.

    Raises:
        ModelError: the scale is not a positive number.
    """
    if not scale > 0:
        raise ModelError(f"input scale {scale!r} is not a positive number")
    v = np.arange(256, dtype=np.float64) / 255.0 / float(scale)
    rounded = np.sign(v) * np.floor(np.abs(v) + 0.5)
    return np.clip(rounded + int(zero_point), -128, 127).astype(np.int8)


def quantize_images(images_uint8: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Raw uint8 images -> the int8 model input, through :func:`input_lut` (same shape).

    Raises:
        ModelError: the images are not uint8.
    """
    images = np.asarray(images_uint8)
    if images.dtype != np.uint8:
        raise ModelError(f"images must be uint8 pixels 0..255, got {images.dtype.name}")
    return input_lut(scale, zero_point)[images]


def input_quantization(graph: Any) -> tuple[float, int]:
    """(scale, zero point) of a graph's int8 or uint8 input tensor (per tensor).

    Raises:
        ModelError: the input or output is not integer-quantized (names the file and the dtypes).
    """
    spec = io_spec(graph)
    return spec.input_scale, spec.input_zero_point


def quantize_for(graph: Any, images_uint8: np.ndarray) -> np.ndarray:
    """Raw uint8 images -> the int8 input batch of ``graph`` (N, *input_shape[1:])."""
    scale, zp = input_quantization(graph)
    x = quantize_images(images_uint8, scale, zp)
    return x.reshape((len(x), *graph.input.shape[1:]))


# ---- any int8 model ------------------------------------------------------------------------------------

INPUT_DTYPES = ("int8", "uint8")
OUTPUT_DTYPES = ("int8",)
# How the MLPerf ``m-results-[...]`` scores come from the raw outputs (the runner needs non-negative scores it
# can normalise): the dequantized outputs themselves when they cannot be negative (softmax probabilities),
# their softmax otherwise (logits), and for an autoencoder (output as large as its input) one value, the mean
# squared error between the dequantized input and output (MLPerf Tiny's anomaly score).
SCORES = ("dequantized", "softmax", "mse")


@dataclass(frozen=True)
class IoSpec:
    """What the device receives and returns per inference for one model (see the module docstring).

    Attributes:
        input_bytes: bytes loaded per inference: 784 raw pixels for an image classifier, else the input
            tensor's bytes.
        input_kind: ``pixels`` (raw 0..255 through :func:`input_lut`), ``int8`` or ``uint8`` (the input
            tensor's bytes as they are).
        input_shape: the model's input shape (batch 1).
        input_scale, input_zero_point: the input tensor's quantization.
        outputs: raw outputs per inference (the output tensor's elements).
        output_scale, output_zero_point: the output tensor's quantization.
        scores: how ``m-results`` is formed (:data:`SCORES`).
    """

    input_bytes: int
    input_kind: str
    input_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    outputs: int
    output_scale: float
    output_zero_point: int
    scores: str

    @property
    def image(self) -> bool:
        """True for a digit classifier fed raw pixels through the input table (the MNIST variants)."""
        return self.input_kind == "pixels"

    @property
    def input_dtype(self) -> np.dtype:
        """The dtype of one input as the host runtimes take it (int8 for pixels, through the table)."""
        return np.dtype(np.uint8 if self.input_kind == "uint8" else np.int8)

    def as_dict(self) -> dict[str, Any]:
        return {"input_bytes": self.input_bytes, "input_kind": self.input_kind,
                "input_shape": list(self.input_shape), "input_scale": self.input_scale,
                "input_zero_point": self.input_zero_point, "outputs": self.outputs,
                "output_scale": self.output_scale, "output_zero_point": self.output_zero_point, "scores": self.scores}


def _per_tensor(t: Any, what: str, path: Any) -> tuple[float, int]:
    scale, zp = np.asarray(t.scale).ravel(), np.asarray(t.zero_point).ravel()
    if scale.size != 1 or zp.size > 1:
        raise ModelError(f"{path}: the model's {what} tensor must be quantized per tensor (one scale and zero point, "
                         f"has {scale.size} scales)")
    if not float(scale[0]) > 0:
        raise ModelError(f"{path}: the model's {what} scale {float(scale[0])!r} is not a positive number")
    return float(scale[0]), int(zp[0]) if zp.size else 0


def io_spec(graph: Any) -> IoSpec:
    """The I/O contract of ``graph``: one int8/uint8 input, one int8 output, each quantized per tensor.

    Raises:
        ModelError: more than one input or output, a float (not integer-quantized) input or output, or a
            quantization the firmware cannot report (names the file and what it found).
    """
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ModelError(f"{graph.path}: the firmware runs models with one input and one output tensor (this one has "
                         f"{len(graph.inputs)} and {len(graph.outputs)})")
    inp, out = graph.input, graph.output
    if inp.dtype not in INPUT_DTYPES or out.dtype not in OUTPUT_DTYPES or not inp.scale.size or not out.scale.size:
        raise ModelError(f"{graph.path}: input {inp.dtype}, output {out.dtype}: the firmware needs an integer-quantized "
                         "model (int8 or uint8 input, int8 output); quantize it with full integer quantization first")
    if inp.shape[:1] != (1,) or out.shape[:1] != (1,):
        raise ModelError(f"{graph.path}: input {inp.shape}, output {out.shape}: the firmware runs batch-1 models")
    in_scale, in_zp = _per_tensor(inp, "input", graph.path)
    out_scale, out_zp = _per_tensor(out, "output", graph.path)
    outputs = out.size
    image = inp.dtype == "int8" and is_classifier_io(inp.size, outputs)
    if image:
        kind = "pixels"
    else:
        kind = inp.dtype
    if outputs == 1:
        scores = "dequantized"  # one value (a regression or an anomaly score): the runner takes it as it is
    elif outputs == inp.size and not image:
        scores = "mse"
    elif (-128 - out_zp) * out_scale >= 0:
        scores = "dequantized"
    else:
        scores = "softmax"
    return IoSpec(IMAGE_BYTES if image else inp.nbytes, kind, tuple(inp.shape), in_scale, in_zp, outputs, out_scale,
                  out_zp, scores)


def dequantize(raw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``(raw - zero_point) * scale`` in float32, as the firmware computes it."""
    return (np.asarray(raw, np.int32) - np.int32(zero_point)).astype(np.float32) * np.float32(scale)
