"""Host runner for the native backend: the generated C built as a shared library and called with ctypes.

The library holds exactly the C the firmware gets (kernels, graph code and the ``edgedigit_model.h`` runner)
plus a small batch entry point. It is built once per model and compiler into
``<build>/cache/native/<key>/`` (key: model hash, generated sources, compiler and flags), so repeated runs
only load it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..core.errors import ModelError, ToolError
from ..core.fsutil import staged_dir, write_atomic
from ..core.graph import Graph, load_graph
from ..core.paths import build_dir, templates_dir

CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fPIC", "-shared")
HOST_SHIM = "edgedigit_native_host.c"
LIBRARY = "libedgedigit_native.so"


def host_compiler() -> str:
    """``$CC`` if set, else the first of cc, gcc, clang found on PATH.

    Raises:
        ToolError: no C compiler is installed.
    """
    for name in [os.environ.get("CC", "")] + ["cc", "gcc", "clang"]:
        if name and shutil.which(name):
            return name
    raise ToolError("no host C compiler found (set CC or install gcc or clang) to build the native backend")


def _sources(graph: Graph, fc_product: str = "float32") -> dict[str, str]:
    from ..codegen import native

    program = native.prepare(graph, fc_product=fc_product)
    files: dict[str, str | bytes] = dict(native.generate(graph, variant=graph.path.stem, source_name=graph.path.name,
                                                         program=program))
    for name in ("edgedigit_model.h", native.ROM_HEADER):  # runtime headers the runner and kernels include
        files[name] = (templates_dir() / "runtime" / name).read_text()
    files[HOST_SHIM] = (templates_dir() / "native" / "host" / HOST_SHIM).read_text()
    return {k: v if isinstance(v, str) else v.decode() for k, v in files.items()}


def build_library(graph: Graph, cache_dir: Path | None = None, compiler: str | None = None,
                  fc_product: str = "float32") -> Path:
    """Generate the C for ``graph`` and compile it into a shared library (cached).

    Args:
        graph: the int8 model.
        cache_dir: where libraries are kept; default ``<build>/cache/native``.
        compiler: the C compiler; default :func:`host_compiler`.
        fc_product: the per-tensor FULLY_CONNECTED scale product (``codegen.native.FC_PRODUCTS``): ``"float32"``
            as the firmware (the TFLM on devices), ``"double"`` as the tflite-micro wheel.

    Returns:
        The path of the shared library.

    Raises:
        ModelError / UnsupportedOpError: the model cannot be compiled by the native backend.
        ToolError: the compiler is missing or rejects the generated code (its message is included).
    """
    cc = compiler or host_compiler()
    sources = _sources(graph, fc_product)
    h = hashlib.sha256(graph.sha256.encode())
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    h.update(" ".join((cc, *CFLAGS)).encode())
    root = Path(cache_dir) if cache_dir is not None else build_dir() / "cache" / "native"
    final = root / h.hexdigest()[:24]
    lib = final / LIBRARY
    if lib.is_file():
        return lib
    with staged_dir(final) as tmp:
        for name, text in sources.items():
            write_atomic(tmp / name, text)
        cmd = [cc, *CFLAGS, "-o", LIBRARY, *sorted(n for n in sources if n.endswith(".c"))]
        try:
            res = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300)
        except FileNotFoundError:
            raise ToolError(f"C compiler {cc} not found") from None
        if res.returncode != 0:
            first = (res.stderr.strip().splitlines() or ["(no message)"])[0]
            raise ToolError(f"{graph.path}: {cc} failed on the generated native C: {first}")
    return lib


class NativeModel:
    """A .tflite model compiled by the native backend and loaded into this process.

    ``fc_product="double"`` builds the C with the tflite-micro wheel's per-tensor FULLY_CONNECTED multipliers
    instead of the firmware's (see ``codegen.native.FC_PRODUCTS``), to compare with ``run_tflm`` bit for bit.
    """

    def __init__(self, tflite_path: str | Path, cache_dir: Path | None = None, compiler: str | None = None,
                 fc_product: str = "float32"):
        self.graph = load_graph(tflite_path)
        self.path = self.graph.path
        self.library = build_library(self.graph, cache_dir, compiler, fc_product)
        self._lib = ctypes.CDLL(str(self.library))
        self._run = self._lib.edgedigit_native_run_batch
        self._run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32]
        self._run.restype = ctypes.c_int
        self._lib.edgedigit_native_arena_bytes.restype = ctypes.c_int32
        self.arena_bytes = int(self._lib.edgedigit_native_arena_bytes())
        self.input_shape = tuple(self.graph.input.shape)
        self.output_shape = tuple(self.graph.output.shape)

    @property
    def has_runner(self) -> bool:
        """True if the library holds the firmware runner (``edgedigit_model_invoke``)."""
        return hasattr(self._lib, "edgedigit_model_invoke")

    def run(self, x_int8: np.ndarray) -> np.ndarray:
        """Run N int8 inputs of the model's input shape (without its batch-1 axis, or with it).

        Returns:
            int8 array (N, *output_shape[1:]).

        Raises:
            ModelError: wrong dtype or shape of ``x_int8``.
        """
        x = np.asarray(x_int8)
        if x.dtype != np.int8:
            raise ModelError(f"{self.path}: the native model takes int8 input, got {x.dtype.name}")
        if tuple(x.shape[1:]) != self.input_shape[1:]:
            raise ModelError(f"{self.path}: the model's input shape is {self.input_shape}; got a batch of shape "
                             f"{x.shape} (expected (N, *input_shape[1:]))")
        x = np.ascontiguousarray(x)
        out = np.empty((len(x), *self.output_shape[1:]), np.int8)
        if len(x) and self._run(x.ctypes.data, out.ctypes.data, len(x)) != 0:
            raise ModelError(f"{self.path}: the native graph failed (a pooling window held no input)")
        return out

    def invoke_pixels(self, pixels: np.ndarray) -> tuple[int, np.ndarray]:
        """Call the firmware runner on one input as the device receives it (a digit image's 784 raw pixels,
        else the input tensor's bytes): fill ``edgedigit_model_input()``, ``edgedigit_model_invoke()``, read
        ``edgedigit_model_output(i)``.

        Returns:
            (predicted class, raw int32 outputs).
        """
        from ..core.int8 import io_spec

        spec = io_spec(self.graph)
        data = np.ascontiguousarray(np.asarray(pixels).reshape(-1)).view(np.uint8)
        if data.size != spec.input_bytes:
            raise ModelError(f"{self.path}: the runner takes {spec.input_bytes} input bytes, got {data.size}")
        self._lib.edgedigit_model_input.restype = ctypes.c_void_p
        ctypes.memmove(self._lib.edgedigit_model_input(), data.ctypes.data, data.size)
        self._lib.edgedigit_model_invoke.restype = ctypes.c_int
        cls = int(self._lib.edgedigit_model_invoke())
        get = self._lib.edgedigit_model_output
        get.argtypes, get.restype = [ctypes.c_uint32], ctypes.c_int32
        return cls, np.array([get(i) for i in range(spec.outputs)], np.int32)


def run_native(tflite_path: str | Path, x: np.ndarray) -> np.ndarray:
    """The runtimes signature (``edgedigit.runtimes``): int8 inputs (N, ...) -> int8 outputs (N, C)."""
    return NativeModel(tflite_path).run(x)


# ---- the same C on an emulated Cortex-M4 (ARMv7E-M DSP path) ---------------------------------------------------

M4_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2", "-std=c99", "-Wall",
            "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections", "-ffreestanding")
TICK_INSTRUCTIONS = 40  # mps2-an386 SysTick runs at 25 MHz; -icount shift=0 is 1 ns per instruction


def run_qemu_m4(tflite_path: str | Path, x_int8: np.ndarray, work_dir: Path, timeout: float = 600.0,
                fc_product: str = "float32") -> tuple[np.ndarray, float]:
    """Run the native C for ``tflite_path`` on int8 inputs in QEMU (mps2-an386, Cortex-M4F, -icount).

    The graph is built with arm-none-eabi-gcc, so the SMLAD/SXTB16 path of the kernels is the one that runs.

    Args:
        tflite_path: the int8 model.
        x_int8: N inputs (N, *input_shape[1:]), embedded in the firmware image.
        work_dir: where sources, the ELF and QEMU's output go.
        timeout: seconds for QEMU.
        fc_product: the per-tensor FULLY_CONNECTED scale product (see :class:`NativeModel`).

    Returns:
        The int8 outputs (N, *output_shape[1:]) and the emulated instructions per inference spent in
        ``edgedigit_native_run`` (SysTick ticks x 40, resolution 40 instructions per run).

    Raises:
        ToolError: arm-none-eabi-gcc or qemu-system-arm missing or failing.
    """
    from ..codegen import native as codegen
    from ..codegen.render import c_array_body

    graph = load_graph(tflite_path)
    x = np.ascontiguousarray(np.asarray(x_int8, np.int8))
    if tuple(x.shape[1:]) != tuple(graph.input.shape[1:]):
        raise ModelError(f"{graph.path}: inputs of shape {x.shape} do not match the model's {graph.input.shape}")
    cc, qemu = shutil.which("arm-none-eabi-gcc"), shutil.which("qemu-system-arm")
    if cc is None or qemu is None:
        raise ToolError("run_qemu_m4 needs arm-none-eabi-gcc and qemu-system-arm (Debian: gcc-arm-none-eabi, "
                        "libnewlib-arm-none-eabi, qemu-system-arm)")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    files = codegen.generate_graph(graph, variant=graph.path.stem, source_name=graph.path.name,
                                   program=codegen.prepare(graph, fc_product=fc_product))
    harness = templates_dir() / "native" / "m4check"
    files["m4check_main.c"] = (harness / "m4check_main.c").read_text()
    files["m4check_data.h"] = (f"#define M4CHECK_COUNT {len(x)}u\nstatic const int8_t g_m4check_inputs[] = {{\n"
                               f"{c_array_body(x.reshape(-1))}\n}};\n")
    for name, text in files.items():
        write_atomic(work / name, text)
    elf = work / "m4check.elf"
    cmd = [cc, *M4_FLAGS, "-nostdlib", "-nostartfiles", "-Wl,--gc-sections", "-T", str(harness / "m4check.ld"),
           "-o", str(elf), *sorted(n for n in files if n.endswith(".c")),
           "-Wl,--start-group", "-lc_nano", "-lgcc", "-Wl,--end-group"]
    res = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise ToolError(f"{graph.path}: arm-none-eabi-gcc failed on the native C: {res.stderr.strip()[:500]}")
    try:
        run = subprocess.run([qemu, "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "null",
                              "-icount", "shift=0", "-semihosting-config", "enable=on,target=native",
                              "-kernel", str(elf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"{graph.path}: QEMU did not finish the check harness in {timeout:.0f} s") from None
    lines = run.stdout.split()  # semihosting writes to QEMU's stderr, merged here
    if run.returncode != 0 or len(lines) != len(x) + 2 or lines[-2] != "ticks":
        raise ToolError(f"{graph.path}: QEMU exited {run.returncode} with unexpected output {run.stdout[-300:]!r}")
    out = np.array([np.frombuffer(bytes.fromhex(h), np.int8) for h in lines[:len(x)]], np.int8)
    per_inference = int(lines[-1], 16) * TICK_INSTRUCTIONS / max(len(x), 1)
    return out.reshape((len(x), *graph.output.shape[1:])), per_inference
