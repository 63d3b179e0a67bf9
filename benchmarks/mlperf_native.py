"""The four MLPerf Tiny reference models through the native backend, element for element against TFLM.

For each model (ad01 autoencoder, kws01 DS-CNN, ic01 ResNet-8, vww01 MobileNet; from
``../shared/third_party/mlperf-tiny/models``): generate the native C, build it as a host library and run
``--host-inputs`` seeded random int8 inputs (``numpy.random.default_rng(0)``, the full int8 range) through it,
then the first ``--m4-inputs`` of them through the same C built for a Cortex-M4 and run in QEMU
(``edgedigit.runtimes.native_host.run_qemu_m4``: the ARMv7E-M DSP path, emulated instructions per inference).

The references:

* ``wheel``: TFLM's Python interpreter (the ``tflite-micro`` wheel, the interpreter ``run_tflm`` uses; here
  with a 4 MiB arena, as ``run_tflm``'s measured arena is too small for ad01 until issue 12 item 5 lands).
* ``device``: TFLM's C++ sources of the TFLM that runs on devices (``--tflm-src``, default
  ``../shared/third_party/tflite-micro``), reference kernels, built for this host with g++ (cached under
  ``<build>/cache/tflm-src``; the first build takes a few minutes). Skipped with ``--no-device``.

The native C is built twice: with the device arithmetic (the firmware's: a per-tensor FULLY_CONNECTED
multiplies input and filter scale in float32, as every TFLM's C++ does) and with the wheel's (its x86-64
binary multiplies them in double): the first must equal the device TFLM on every element, the second the
wheel on every element; the columns show how many elements the device arithmetic differs from the wheel by.

    PYTHONPATH=toolchain python benchmarks/mlperf_native.py [--host-inputs 1000] [--m4-inputs 100] [--models ad01 kws01]

Prints one table (model, ops, elements compared host/M4, elements differing, emulated instructions per
inference on the M4, flash = bytes of the generated constant arrays, RAM = the activation arena, and the
text+data / data+bss of the generated C linked alone for a Cortex-M4) and writes
``<build>/results/mlperf-native.json``. Exit status 1 if an element differs where it must not.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
THIRD_PARTY = REPO.parent / "shared" / "third_party"
MODELS = {"ad01": "ad01_int8.tflite", "kws01": "kws_ref_model.tflite", "ic01": "pretrainedResnet_quant.tflite",
          "vww01": "vww_96_int8.tflite"}
WHEEL_ARENA = 1 << 22
CTYPE_BYTES = {"int8_t": 1, "int32_t": 4}


def wheel_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """TFLM's Python interpreter (the tflite-micro wheel) on each input, with a generous arena."""
    from edgedigit.runtimes.tflm import TFLMModel

    return TFLMModel(path, arena=WHEEL_ARENA).run(x)


# ---- the device TFLM's C++ sources, built for the host ----------------------------------------------------------

_KERNELS = ("fully_connected", "conv", "depthwise_conv", "pooling", "reshape", "softmax", "add", "mul", "pad",
            "concatenation", "reduce", "quantize", "kernel_util", "micro_tensor_utils", "activations")
_PLATFORMS = ("arc_custom", "arc_emsdp", "bluepill", "ceva", "chre", "cortex_m_corstone_300", "cortex_m_generic",
              "hexagon", "riscv32_generic", "microfrontend")
_MAIN = r"""
#include <cstdint>
#include <cstdio>
#include <vector>
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

alignas(16) static uint8_t g_arena[8 << 20];

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    FILE *f = std::fopen(argv[1], "rb");
    std::vector<uint8_t> model;
    for (int c; (c = std::fgetc(f)) != EOF;) model.push_back(static_cast<uint8_t>(c));
    std::fclose(f);
    alignas(16) static uint8_t buf[1 << 20];
    if (model.size() > sizeof buf) return 3;
    for (size_t i = 0; i < model.size(); ++i) buf[i] = model[i];
    static tflite::MicroMutableOpResolver<16> ops;
    ops.AddFullyConnected(); ops.AddConv2D(); ops.AddDepthwiseConv2D(); ops.AddAveragePool2D();
    ops.AddMaxPool2D(); ops.AddReshape(); ops.AddSoftmax(); ops.AddAdd(); ops.AddMul(); ops.AddPad();
    ops.AddConcatenation(); ops.AddMean(); ops.AddQuantize();
    tflite::MicroInterpreter interp(tflite::GetModel(buf), ops, g_arena, sizeof g_arena);
    if (interp.AllocateTensors() != kTfLiteOk) return 4;
    TfLiteTensor *in = interp.input(0), *out = interp.output(0);
    FILE *xi = std::fopen(argv[2], "rb"), *yo = std::fopen(argv[3], "wb");
    while (std::fread(in->data.raw, 1, in->bytes, xi) == in->bytes) {
        if (interp.Invoke() != kTfLiteOk) return 5;
        std::fwrite(out->data.raw, 1, out->bytes, yo);
    }
    std::fclose(xi);
    std::fclose(yo);
    return 0;
}
"""


# micro_ops.h and micro_mutable_op_resolver.h include two headers of TFLM's signal library, which the snapshot in
# ../shared leaves out; they only declare registrations these models never use (upstream text, declarations only).
_SIGNAL_HEADERS = {name: f"""#pragma once
#include "tensorflow/lite/micro/micro_common.h"
namespace tflite {{
namespace tflm_signal {{
TFLMRegistration* Register_{name.upper()}();
TFLMRegistration* Register_{name.upper()}_FLOAT();
TFLMRegistration* Register_{name.upper()}_INT16();
TFLMRegistration* Register_{name.upper()}_INT32();
}}  // namespace tflm_signal
}}  // namespace tflite
""" for name in ("irfft", "rfft")}


def _tflm_sources(src: Path) -> list[Path]:
    out = []
    for p in sorted((src / "tensorflow").rglob("*.cc")):
        rel = p.relative_to(src).as_posix()
        parts = set(Path(rel).parts)
        if any(s in rel for s in ("_test", "/examples/", "/testing/", "/tools/", "/python/", "benchmark",
                                  "test_helper", "mock_micro_graph", "fake_micro_context")) or parts & set(_PLATFORMS):
            continue
        if "/micro/kernels/" in rel and (Path(rel).parent.name != "kernels"
                                         or not any(Path(rel).name.startswith(k) for k in _KERNELS)):
            continue
        out.append(p)
    return out


def device_tflm_runner(src: Path) -> Path:
    """A host executable of TFLM built from ``src`` (reference kernels): ``runner model.tflite in.bin out.bin``."""
    from edgedigit.core.paths import build_dir

    key = hashlib.sha256(("\0".join([str(src.resolve()), _MAIN, *_KERNELS])).encode()).hexdigest()[:16]
    cache = build_dir() / "cache" / "tflm-src" / key
    exe = cache / "tflm_runner"
    if exe.is_file():
        return exe
    cache.mkdir(parents=True, exist_ok=True)
    signal = cache / "include" / "signal" / "micro" / "kernels"
    signal.mkdir(parents=True, exist_ok=True)
    for name, text in _SIGNAL_HEADERS.items():
        if not (src / "signal" / "micro" / "kernels" / f"{name}.h").is_file():
            (signal / f"{name}.h").write_text(text)
    inc = [f"-I{src}", f"-I{cache / 'include'}", "-isystem", str(src / "third_party" / "flatbuffers" / "include"), "-isystem",
           str(src / "third_party" / "gemmlowp"), "-isystem", str(src / "third_party" / "ruy")]
    flags = ["-std=c++17", "-O2", "-w", "-DTF_LITE_STATIC_MEMORY", "-fno-exceptions", "-fno-rtti", *inc]

    def compile_one(p: Path) -> Path:
        obj = cache / (p.relative_to(src).as_posix().replace("/", "_") + ".o")
        if not obj.is_file():
            subprocess.run(["g++", *flags, "-c", str(p), "-o", str(obj) + ".tmp"], check=True)
            os.replace(str(obj) + ".tmp", obj)
        return obj

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        objects = list(pool.map(compile_one, _tflm_sources(src)))
    (cache / "main.cc").write_text(_MAIN)
    subprocess.run(["g++", *flags, str(cache / "main.cc"), *map(str, objects), "-o", str(exe) + ".tmp"], check=True)
    os.replace(str(exe) + ".tmp", exe)
    print(f"built TFLM from {src} ({len(objects)} files) in {time.perf_counter() - t0:.0f} s: {exe}", file=sys.stderr)
    return exe


def device_outputs(runner: Path, path: Path, x: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="edgedigit-tflm-src-") as tmp:
        xi, yo = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        np.ascontiguousarray(x).tofile(xi)
        subprocess.run([str(runner), str(path), str(xi), str(yo)], check=True)
        return np.fromfile(yo, np.int8).reshape((len(x), *out_shape[1:]))


# ---- one model --------------------------------------------------------------------------------------------------

def flash_bytes(program) -> int:
    """Bytes of the constant arrays the generated C holds (weights, folded biases, multipliers, shifts, ...)."""
    return int(sum(values.size * CTYPE_BYTES[ctype] for s in program.steps for ctype, _, values in s.arrays))


def m4_image_bytes(graph, program) -> dict | None:
    """text, data and bss of the generated C alone, linked for a Cortex-M4 with unused code dropped
    (run_qemu_m4's flags, ``--gc-sections`` from ``edgedigit_native_run``); None without arm-none-eabi-gcc."""
    from edgedigit.codegen import native
    from edgedigit.runtimes.native_host import M4_FLAGS

    gcc, size = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-size")
    if gcc is None or size is None:
        return None
    files = native.generate_graph(graph, variant=graph.path.stem, source_name=graph.path.name, program=program)
    with tempfile.TemporaryDirectory(prefix="edgedigit-m4-size-") as tmp:
        for fname, text in files.items():
            (Path(tmp) / fname).write_text(text)
        subprocess.run([gcc, *M4_FLAGS, "-nostdlib", "-nostartfiles", "-Wl,--gc-sections", "-Wl,-e,edgedigit_native_run",
                        "-o", "graph.elf", *sorted(f for f in files if f.endswith(".c")), "-lgcc"], cwd=tmp, check=True)
        text_b, data_b, bss_b = (int(v) for v in subprocess.run([size, "graph.elf"], cwd=tmp, check=True,
                                                                 capture_output=True, text=True
                                                                 ).stdout.splitlines()[1].split()[:3])
    return {"text": text_b, "data": data_b, "bss": bss_b, "flash": text_b + data_b, "ram": data_b + bss_b}


def measure(name: str, path: Path, host_n: int, m4_n: int, runner: Path | None) -> dict:
    from edgedigit.codegen import native
    from edgedigit.core.graph import load_graph
    from edgedigit.runtimes.native_host import NativeModel, run_qemu_m4

    g = load_graph(path)
    program = native.prepare(g)
    x = np.random.default_rng(0).integers(-128, 128, (host_n, *g.input.shape[1:])).astype(np.int8)
    t0 = time.perf_counter()
    device_c = NativeModel(path).run(x)
    host_s = time.perf_counter() - t0
    wheel_c = NativeModel(path, fc_product="double").run(x)
    wheel = wheel_outputs(path, x)
    row = {
        "model": name, "file": path.name, "sha256": g.sha256, "ops": len(g.ops), "op_names": g.op_names(),
        "host_inputs": host_n, "host_elements": int(device_c.size),
        "host_differ_device_arith_vs_wheel": int((device_c != wheel).sum()),
        "host_max_abs_diff_device_arith_vs_wheel": int(np.abs(device_c.astype(int) - wheel).max()),
        "host_differ_wheel_arith_vs_wheel": int((wheel_c != wheel).sum()),
        "flash_bytes": flash_bytes(program), "model_weights_bytes": program.weights_bytes,
        "arena_bytes": program.arena_bytes, "arena_lower_bound_bytes": program.plan.lower_bound,
        "host_us_per_inference": round(host_s / host_n * 1e6, 1), "m4_image": m4_image_bytes(g, program),
    }
    if runner is not None:
        device = device_outputs(runner, path, x, g.output.shape)
        row["host_differ_device_arith_vs_device_tflm"] = int((device_c != device).sum())
        row["wheel_differ_vs_device_tflm"] = int((wheel != device).sum())
    if m4_n:
        with tempfile.TemporaryDirectory(prefix="edgedigit-m4-") as tmp:
            m4, per_inference = run_qemu_m4(path, x[:m4_n], Path(tmp))
        row.update({"m4_inputs": m4_n, "m4_elements": int(m4.size),
                    "m4_differ_vs_host_c": int((m4 != device_c[:m4_n]).sum()),
                    "m4_differ_vs_wheel": int((m4 != wheel[:m4_n]).sum()),
                    "m4_instructions_per_inference": round(per_inference)})
        if runner is not None:
            row["m4_differ_vs_device_tflm"] = int((m4 != device[:m4_n]).sum())
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--models-dir", type=Path, default=THIRD_PARTY / "mlperf-tiny" / "models")
    ap.add_argument("--host-inputs", type=int, default=1000)
    ap.add_argument("--m4-inputs", type=int, default=100, help="0: no QEMU run")
    ap.add_argument("--tflm-src", type=Path, default=Path(os.environ.get("EDGEDIGIT_TFLM_SRC",
                                                                         THIRD_PARTY / "tflite-micro")))
    ap.add_argument("--no-device", action="store_true", help="skip the TFLM built from its C++ sources")
    args = ap.parse_args()

    from edgedigit.core.fsutil import write_json
    from edgedigit.core.paths import results_dir
    from edgedigit.core.results import machine

    runner = None
    if not args.no_device:
        if not (args.tflm_src / "tensorflow" / "lite" / "micro").is_dir() or shutil.which("g++") is None:
            print(f"no TFLM sources at {args.tflm_src} (or no g++): the device column is skipped", file=sys.stderr)
        else:
            runner = device_tflm_runner(args.tflm_src)
    rows = []
    for name in args.models:
        rows.append(measure(name, args.models_dir / MODELS[name], args.host_inputs, args.m4_inputs, runner))
        print(f"{name}: done", file=sys.stderr, flush=True)

    dev = runner is not None
    print(f"host: {args.host_inputs} inputs, qemu-m4: {args.m4_inputs} (default_rng(0), int8 -128..127); "
          "native C with the device arithmetic unless marked 'wheel arith.'")
    print(f"{'model':6s} {'ops':>4s} {'host elts':>10s} {'!=device':>9s} {'!=wheel':>8s} {'wheel arith.':>12s} "
          f"{'M4 elts':>8s} {'M4!=host':>8s} {'M4!=dev':>8s} {'M4!=wheel':>9s} {'instr/inf':>12s} "
          f"{'flash B':>8s} {'RAM B':>7s} {'M4 flash':>8s} {'M4 RAM':>7s}")
    for r in rows:
        na = "-"
        print(f"{r['model']:6s} {r['ops']:4d} {r['host_elements']:10d} "
              f"{r['host_differ_device_arith_vs_device_tflm'] if dev else na:>9} "
              f"{r['host_differ_device_arith_vs_wheel']:8d} {r['host_differ_wheel_arith_vs_wheel']:12d} "
              f"{r.get('m4_elements', na):>8} {r.get('m4_differ_vs_host_c', na):>8} "
              f"{r.get('m4_differ_vs_device_tflm', na) if dev else na:>8} {r.get('m4_differ_vs_wheel', na):>9} "
              f"{r.get('m4_instructions_per_inference', 0):12,d} {r['flash_bytes']:8d} {r['arena_bytes']:7d} "
              f"{(r['m4_image'] or {}).get('flash', na):>8} {(r['m4_image'] or {}).get('ram', na):>7}")
    print("columns: !=device / !=wheel: elements of the native C (device arithmetic) differing from TFLM built from "
          "its C++ sources / from the tflite-micro wheel; wheel arith.: the native C built with the wheel's per-tensor "
          "FC multipliers vs the wheel; M4: the same C on qemu-m4; instr/inf: emulated instructions in "
          "edgedigit_native_run (QEMU -icount, not cycles); flash: bytes of the generated constant arrays; RAM: "
          "the activation arena; M4 flash / RAM: text+data / data+bss of the generated C alone linked for a "
          "Cortex-M4 (-O2, unused code dropped; RAM is the arena plus a few statics, no stack)")
    out = results_dir() / "mlperf-native.json"
    write_json(out, {"machine": machine(), "host_inputs": args.host_inputs, "m4_inputs": args.m4_inputs,
                     "seed": 0, "tflm_src": str(args.tflm_src) if dev else None, "results": rows})
    print(f"wrote {out}")
    must_be_zero = ["host_differ_wheel_arith_vs_wheel", "m4_differ_vs_host_c",
                    "host_differ_device_arith_vs_device_tflm", "m4_differ_vs_device_tflm"]
    return 0 if all(r.get(k, 0) == 0 for r in rows for k in must_be_zero) else 1


if __name__ == "__main__":
    sys.exit(main())
