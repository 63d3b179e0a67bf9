"""TFLM on the emulated Cortex-M4 (qemu-m4) against edgedigit's native backend, for every trained neural variant.

For each variant: the native firmware, the TFLM firmware with CMSIS-NN kernels and the TFLM firmware with the
reference kernels (TFLM compiled from ../shared/third_party/tflite-micro, or $EDGEDIGIT_TFLM_SRC) each get
the first N MNIST test images (default all 10,000; deterministic, no sampling) over the same serial protocol
(``edgedigit bench compare --board qemu-m4``). Printed per variant: median emulated instructions per
inference (QEMU -icount shift=0: instructions, not cycles of a real chip) and per MAC, native / CMSIS-NN,
firmware flash (text + data) and RAM (data + bss + the painted stack's high-water mark), and the images and
output elements of each firmware that differ from the tflite-micro Python interpreter's.

With ``--arduino``: the same TFLM firmware built against ../shared/third_party/Arduino_TensorFlowLite (the
library nano33ble pins, CMSIS-NN kernels, int8-only registrations) for the variants it can run, and the
TFLM runtime figure this gives nano33ble's budget (boards/nano33ble.toml [runtime.tflm]).

    EDGEDIGIT_DATA=/work/shared/datasets/mnist.npz nice python benchmarks/tflm_m4.py [--images N] [--arduino]

Records go to build/results/compare-qemu-m4.jsonl as each variant finishes; the summary to compare-qemu-m4.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

KEYS = ("native", "tflm_cmsis_nn", "tflm_reference")
ARDUINO_TREE = Path(__file__).resolve().parents[1].parent / "shared" / "third_party" / "Arduino_TensorFlowLite"


def _progress() -> object:
    last = {}

    def update(label: str, done: int, total: int) -> None:
        step = max(1, total // 10)
        if done == total or done // step != last.get(label, -1):
            last[label] = done // step
            print(f"  {label}: {done}/{total}", file=sys.stderr, flush=True)

    return update


def _table(summary: dict) -> bool:
    ok = True
    print(f"qemu-m4 (QEMU mps2-an386, Cortex-M4F): {summary['images']:,} MNIST test images per firmware; "
          f"counts are {summary['counter_note']}")
    print(f"{'variant':<11} {'MACs':>9} | {'instructions per inference':^38} | {'per MAC':^17} | "
          f"{'flash B (text+data)':^26} | {'RAM B (data+bss+stack)':^26} | outputs = TFLM interpreter")
    print(f"{'':<11} {'':>9} | {'native':>11} {'CMSIS-NN':>11} {'reference':>11} {'n/C':>2} | "
          f"{'nat':>5} {'C-NN':>5} {'ref':>5} | {'native':>8} {'CMSIS-NN':>8} {'ref':>8} | "
          f"{'native':>8} {'CMSIS-NN':>8} {'ref':>8} | differing images / elements (native, CMSIS-NN, ref)")
    for r in summary["results"]:
        ins, pm, fl, ram = r["instructions"], r["instructions_per_mac"] or {}, r["flash"], r["ram"]
        ratio = r.get("native_over_tflm_cmsis_nn", {}).get("instructions")

        def num(d: dict, k: str, fmt: str = "{:,}") -> str:
            return fmt.format(d[k]) if k in d else "-"

        diffs = []
        for k in KEYS:
            if k not in r["outputs_identical"]:
                diffs.append("not built")
                ok = False
                continue
            diffs.append(f"{r['images'] - r['images_identical'][k]}/{r['elements'] - r['elements_identical'][k]}")
            ok &= r["outputs_identical"][k]
        print(f"{r['variant']:<11} {r['macs'] or 0:>9,} | {num(ins, 'native'):>11} {num(ins, 'tflm_cmsis_nn'):>11} "
              f"{num(ins, 'tflm_reference'):>11} {f'{ratio:.2f}x' if ratio else '-':>5} | "
              f"{num(pm, 'native', '{:.2f}'):>5} {num(pm, 'tflm_cmsis_nn', '{:.2f}'):>5} "
              f"{num(pm, 'tflm_reference', '{:.2f}'):>5} | {num(fl, 'native'):>8} {num(fl, 'tflm_cmsis_nn'):>8} "
              f"{num(fl, 'tflm_reference'):>8} | {num(ram, 'native'):>8} {num(ram, 'tflm_cmsis_nn'):>8} "
              f"{num(ram, 'tflm_reference'):>8} | {', '.join(diffs)}")
        for k, why in r["missing"].items():
            print(f"{'':<11} {k} not built: {why}")
    print("stack high-water (B): " + "; ".join(
        f"{r['variant']} " + "/".join(str(r["ram_detail"][k]["stack_used"]) if k in r["ram_detail"] else "-" for k in KEYS)
        for r in summary["results"]) + " (native/CMSIS-NN/reference, of 16,384 reserved)")
    return ok


def _runtime_figures(summary: dict) -> None:
    """What the firmware needs besides the model: flash minus the model's bytes, RAM minus the arena."""
    print("TFLM runtime on qemu-m4 (firmware minus the model's flash bytes; RAM minus the arena, stack included):")
    for r in summary["results"]:
        for k in ("tflm_cmsis_nn", "tflm_reference"):
            if k in r["firmware"]:
                f = r["firmware"][k]
                print(f"  {r['variant']:<11} {k:<15} flash {r['flash'][k] - f['model_flash']:>7,} B   "
                      f"RAM {r['ram'][k] - f['arena']:>6,} B")


_PLATFORM_OBJECTS = ("edgedigit_protocol.o", "edgedigit_platform_qemu_m4.o", "edgedigit_startup_m4.o", "edgedigit_main.o")


def _object_bytes(map_file: Path, objects: tuple[str, ...]) -> tuple[int, int]:
    """(flash, RAM) the linker kept of ``objects`` (the firmware map's input sections after garbage collection)."""
    import re

    text = map_file.read_text()
    text = text[text.index("Linker script and memory map"):]
    flash = ram = 0
    for name, size, obj in re.findall(r"^ (\.\S+|COMMON)\s+0x[0-9a-f]+\s+0x([0-9a-f]+) \S*?/?([\w.]+\.o)$", text, re.M):
        if obj not in objects:
            continue
        n = int(size, 16)
        if name.startswith((".vectors", ".text", ".rodata", ".data")):
            flash += n
        if name.startswith((".data", ".bss", "COMMON")):
            ram += n
    return flash, ram


def _arduino(variants: list[str], images: int) -> int:
    """The Arduino_TensorFlowLite firmware (CMSIS-NN) per variant it runs, and the nano33ble runtime figure."""
    import numpy as np

    from edgedigit.core.errors import EdgeDigitError
    from edgedigit.core.graph import load_graph
    from edgedigit.core.int8 import quantize_for
    from edgedigit.core.store import ModelFolder
    from edgedigit.measure.bench_compare import _Subject, run_firmware
    from edgedigit.models.data import load_dataset
    from edgedigit.runtimes import run_tflm
    from edgedigit.targets.boards import load_board

    if not ARDUINO_TREE.is_dir():
        print(f"--arduino: {ARDUINO_TREE} is missing", file=sys.stderr)
        return 1
    os.environ["EDGEDIGIT_TFLM_SRC"] = str(ARDUINO_TREE)
    board, nano = load_board("qemu-m4"), load_board("nano33ble")
    x = np.ascontiguousarray(load_dataset(None).x_test[:images])
    best = None
    print(f"\nArduino_TensorFlowLite 7948b85 (CMSIS-NN, int8 registrations) on qemu-m4, first {images:,} test images:")
    for v in variants:
        tflite = ModelFolder(v).int8_path
        try:
            run = run_firmware(board, _Subject(v, tflite, v, None), "tflm", None, x, log=lambda m: None)
        except EdgeDigitError as e:
            print(f"  {v:<11} not built: {e}")
            continue
        expected = run_tflm(tflite, quantize_for(load_graph(tflite), x)).reshape(len(x), -1)
        diff = int((run["raw"] != expected).sum())
        flash_rt, ram_rt = run["flash"] - run["model_flash"], run["ram"] - run["arena"]
        plat_flash, plat_ram = _object_bytes(Path(run["project"]) / "build" / "firmware.map", _PLATFORM_OBJECTS)
        # the TFLM part: the runtime without edgedigit's protocol, platform layer and start-up (the Arduino core
        # replaces them on a real board), plus the whole firmware's stack high-water mark (an upper bound)
        tflm_flash, tflm_ram = flash_rt - plat_flash, ram_rt - run["stack_used"] - plat_ram
        print(f"  {v:<11} flash {run['flash']:>7,} B (runtime {flash_rt:,}; TFLM interpreter + kernels + runner "
              f"{tflm_flash:,})  RAM {run['ram']:>6,} B (runtime {ram_rt:,}; TFLM static {tflm_ram:,}, stack "
              f"{run['stack_used']:,})  median {int(np.median(run['counters'])):,} instructions  elements differing "
              f"from the interpreter: {diff}")
        if best is None or tflm_flash > best[1]:
            best = (v, tflm_flash, tflm_ram, run["stack_used"])
    del os.environ["EDGEDIGIT_TFLM_SRC"]
    if best is not None:
        lin = nano.runtime["linear"]
        flash, ram = lin.flash + best[1], lin.ram + best[2] + best[3]
        print(f"nano33ble [runtime.tflm] = runtime.linear (Mbed core + USB serial + protocol: {lin.flash:,} B flash, "
              f"{lin.ram:,} B RAM) + the TFLM part measured here ({best[0]}: {best[1]:,} B flash; {best[2]:,} B static "
              f"RAM + {best[3]:,} B stack high-water) = {flash:,} B flash, {ram:,} B RAM")
    return 0


def main() -> int:
    from edgedigit.core.errors import EdgeDigitError
    from edgedigit.core.paths import models_dir
    from edgedigit.measure.bench_compare import compare_on_board
    from edgedigit.models.data import load_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000, help="first N test images per firmware (default all)")
    ap.add_argument("--variants", nargs="*", default=None, help="default: every variant with model_int8.tflite")
    ap.add_argument("--arduino", action="store_true", help="also the Arduino_TensorFlowLite firmware (nano33ble)")
    ap.add_argument("--arduino-images", type=int, default=1_000)
    ap.add_argument("--no-compare", action="store_true", help="with --arduino: only the Arduino_TensorFlowLite part")
    args = ap.parse_args()
    variants = args.variants or sorted(p.parent.name for p in models_dir().glob("*/model_int8.tflite"))
    if not variants:
        print(f"no trained neural variant under {models_dir()}; train and quantize first", file=sys.stderr)
        return 1
    ok = True
    if not args.no_compare:
        try:
            summary = compare_on_board("qemu-m4", variants, None, load_dataset(None), images=args.images,
                                       progress=_progress(), log=lambda m: print(m, file=sys.stderr, flush=True))
        except EdgeDigitError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        ok = _table(summary)
        _runtime_figures(summary)
    if args.arduino:
        ok &= _arduino(variants, args.arduino_images) == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
