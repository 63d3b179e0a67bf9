"""Read a .tflite flatbuffer into a small typed graph: tensors (with data and quantization), ops, options.

The flatbuffer is parsed with the maintained ``tflite`` schema package; this module only turns it into
plain dataclasses and checks it, so a truncated, corrupted or foreign file is refused with a clear line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError

_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}
_NP = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "uint8": np.uint8,
       "int64": np.int64, "int16": np.int16, "int8": np.int8}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None  # constant data (weights, biases, shapes), None for activations
    scale: np.ndarray  # float32, empty when not quantized
    zero_point: np.ndarray  # int64, empty when not quantized
    quantized_dimension: int = 0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(_NP[self.dtype]).itemsize

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


@dataclass
class Op:
    index: int
    opcode: str  # builtin operator name, e.g. "FULLY_CONNECTED"
    inputs: list[int]  # tensor indices; -1 marks an omitted optional input
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    path: Path
    sha256: str
    size_bytes: int
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]

    def op_names(self) -> list[str]:
        """The distinct operators the model uses, in order of first use."""
        return list(dict.fromkeys(op.opcode for op in self.ops))

    @property
    def input(self) -> Tensor:
        return self.tensors[self.inputs[0]]

    @property
    def output(self) -> Tensor:
        return self.tensors[self.outputs[0]]

    def is_full_int8(self) -> bool:
        """int8 input and output, and every op's activations int8 or int32 (biases)."""
        return self.input.dtype == "int8" and self.output.dtype == "int8" and all(
            t.dtype in ("int8", "int32") for t in self.tensors
        )

    def macs(self) -> int:
        """Multiply-accumulates per inference of the convolutions and fully connected layers."""
        total = 0
        for op in self.ops:
            out = self.tensors[op.outputs[0]]
            if op.opcode == "CONV_2D":
                _, kh, kw, cin = self.tensors[op.inputs[1]].shape
                total += out.size * kh * kw * cin
            elif op.opcode == "DEPTHWISE_CONV_2D":
                _, kh, kw, _ = self.tensors[op.inputs[1]].shape
                total += out.size * kh * kw
            elif op.opcode == "FULLY_CONNECTED":
                total += out.size * self.tensors[op.inputs[1]].shape[-1]
        return int(total)

    def granularity(self) -> str:
        """``per-channel`` if any weight tensor has more than one scale, else ``per-tensor``."""
        weights = [self.tensors[op.inputs[1]] for op in self.ops
                   if op.opcode in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D") and len(op.inputs) > 1]
        return "per-channel" if any(w.per_channel for w in weights) else "per-tensor"


def _opcode_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _options_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_") and isinstance(v, int)}


def _read_options(op: Any) -> dict[str, Any]:
    import tflite

    kind = op.BuiltinOptionsType()
    table = op.BuiltinOptions()
    if kind == 0 or table is None:
        return {}
    name = _options_names().get(kind)
    cls = getattr(tflite, name, None) if name else None
    if cls is None:
        return {}
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    for attr in dir(cls):
        if attr.startswith("_") or attr in ("Init",) or attr.startswith("GetRootAs") or attr.endswith("BufferHasIdentifier"):
            continue
        if attr.endswith("Length") or attr.endswith("IsNone"):
            continue
        fn = getattr(obj, attr)
        if not callable(fn):
            continue
        try:
            value = fn()
        except TypeError:
            continue
        key = attr[:-7] if attr.endswith("AsNumpy") else attr
        if attr.endswith("AsNumpy"):
            value = [] if isinstance(value, int) else np.asarray(value).tolist()
        elif not isinstance(value, (int, float, bool)):
            continue
        out.setdefault(_snake(key), value)
    return out


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def load_graph(path: str | Path) -> Graph:
    """Parse ``path`` into a :class:`Graph`.

    Raises:
        ModelError: the file is missing, empty, not a TFLite flatbuffer, truncated or corrupted.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    raw = path.read_bytes()
    return parse_graph(raw, path)


def parse_graph(raw: bytes, path: str | Path = "<bytes>") -> Graph:
    """Parse flatbuffer bytes (see :func:`load_graph`)."""
    import tflite

    path = Path(path)
    if len(raw) == 0:
        raise ModelError(f"{path}: the model file is empty")
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier at byte 4)")
    try:
        graph = _parse(raw, path, tflite)
    except ModelError:
        raise
    except Exception as e:  # the flatbuffer runtime raises assorted errors on corrupted offsets
        raise ModelError(f"{path}: corrupted or truncated TFLite flatbuffer ({type(e).__name__}: {e})") from None
    return graph


def _name(t: Any) -> str:
    """A tensor's name; names are optional in the schema (a model may carry none): ``""`` then."""
    name = t.Name()
    return name.decode(errors="replace") if name is not None else ""


def _parse(raw: bytes, path: Path, tflite: Any) -> Graph:
    model = tflite.Model.GetRootAsModel(raw, 0)
    if model.SubgraphsLength() < 1:
        raise ModelError(f"{path}: the model has no subgraph")
    sg = model.Subgraphs(0)
    names = _opcode_names()
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        codes.append(names.get(code, f"BUILTIN_{code}") if code != 32 else f"CUSTOM:{oc.CustomCode()!r}")
    tensors: list[Tensor] = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        dtype = _DTYPES.get(t.Type())
        if dtype is None:
            raise ModelError(f"{path}: tensor {i} has unsupported type code {t.Type()}")
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        if any(s < 0 for s in shape):
            raise ModelError(f"{path}: tensor {i} has a dynamic shape {shape}; only static shapes are supported")
        q = t.Quantization()
        scale = np.asarray(q.ScaleAsNumpy(), np.float32) if q is not None and q.ScaleLength() else np.zeros(0, np.float32)
        zp = np.asarray(q.ZeroPointAsNumpy(), np.int64) if q is not None and q.ZeroPointLength() else np.zeros(0, np.int64)
        qdim = int(q.QuantizedDimension()) if q is not None else 0
        data = None
        b = t.Buffer()
        if b >= model.BuffersLength():
            raise ModelError(f"{path}: tensor {i} refers to buffer {b} of {model.BuffersLength()}")
        buf = model.Buffers(b)
        if buf is not None:
            nbytes = int(np.prod(shape) if shape else 1) * np.dtype(_NP[dtype]).itemsize
            if buf.DataLength():
                data = np.frombuffer(bytes(buf.DataAsNumpy()), dtype=_NP[dtype])
            elif buf.Offset() > 1:  # large models keep buffers after the flatbuffer
                start, size = int(buf.Offset()), int(buf.Size())
                if start + size > len(raw):
                    raise ModelError(f"{path}: tensor {i}'s data lies beyond the end of the file (truncated?)")
                data = np.frombuffer(raw[start:start + size], dtype=_NP[dtype])
            if data is not None:
                if data.nbytes != nbytes:
                    raise ModelError(
                        f"{path}: tensor {i} ({_name(t)}) holds {data.nbytes} bytes, "
                        f"its shape {shape} needs {nbytes}"
                    )
                data = data.reshape(shape)
        tensors.append(Tensor(i, _name(t), shape, dtype, data, scale, zp, qdim))
    ops: list[Op] = []
    for i in range(sg.OperatorsLength()):
        o = sg.Operators(i)
        idx = int(o.OpcodeIndex())
        if idx >= len(codes):
            raise ModelError(f"{path}: operator {i} refers to opcode {idx} of {len(codes)}")
        ins = [int(x) for x in o.InputsAsNumpy()] if o.InputsLength() else []
        outs = [int(x) for x in o.OutputsAsNumpy()] if o.OutputsLength() else []
        for t_idx in ins + outs:
            if t_idx >= len(tensors) or t_idx < -1:
                raise ModelError(f"{path}: operator {i} refers to tensor {t_idx} of {len(tensors)}")
        ops.append(Op(i, codes[idx], ins, outs, _read_options(o)))
    inputs = [int(x) for x in sg.InputsAsNumpy()]
    outputs = [int(x) for x in sg.OutputsAsNumpy()]
    if not inputs or not outputs or max(inputs + outputs) >= len(tensors):
        raise ModelError(f"{path}: the graph's inputs/outputs are missing or out of range")
    return Graph(path, hashlib.sha256(raw).hexdigest(), len(raw), tensors, ops, inputs, outputs)
