"""The int8 I/O contract between the host, the generated firmware and the serial protocol.

One place for what every stage assumes about a digit classifier's input and output: a 28 x 28 image of raw
pixels 0..255 (``IMAGE_BYTES``), 2..``MAX_CLASSES`` outputs, and the input table that turns a raw pixel
into the model's int8 input (``input_lut``), exactly as the firmware does it. ``EDGEDIGIT_IMAGE_BYTES`` and
``EDGEDIGIT_MAX_CLASSES`` in ``firmware_templates/runtime/edgedigit_model.h`` must equal these constants
(a test checks it).
"""

from __future__ import annotations

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
    """(scale, zero point) of a full-int8 graph's input tensor (per tensor).

    Raises:
        ModelError: the graph is not full int8 (names the file and the dtypes).
    """
    if not graph.is_full_int8():
        raise ModelError(f"{graph.path}: not a full-int8 model (input {graph.input.dtype}, output "
                         f"{graph.output.dtype}); quantize it with full integer quantization first")
    return float(np.asarray(graph.input.scale).ravel()[0]), int(np.asarray(graph.input.zero_point).ravel()[0])


def quantize_for(graph: Any, images_uint8: np.ndarray) -> np.ndarray:
    """Raw uint8 images -> the int8 input batch of ``graph`` (N, *input_shape[1:])."""
    scale, zp = input_quantization(graph)
    x = quantize_images(images_uint8, scale, zp)
    return x.reshape((len(x), *graph.input.shape[1:]))
