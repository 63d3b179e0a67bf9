"""``edgedigit bench compare``: the native C backend against TFLM on the same int8 model.

Instructions per inference (valgrind callgrind on this host, deterministic: the count does not depend
on other processes):

- native: the generated graph code + kernel library compiled with the host compiler (same flags as the
  host runner, ``-O2``; and a second build with ``-O3``, which lets the compiler vectorize the portable
  dot products) into a small harness; callgrind counts only inside ``edgedigit_native_run``
  (``--collect-atstart=no --toggle-collect=edgedigit_native_run``), i.e. the graph on an int8 input;
- TFLM: the ``tflite-micro`` package's interpreter (TFLM's reference kernels, as compiled in its wheel)
  driven by a small Python script; callgrind counts only inside
  ``tflite::micro::MicroInterpreter::Invoke()`` (not Python, not set_input/get_output).

Both run the same ``N`` test images quantized through the same input LUT, and their int8 outputs are
compared element for element (a count of mismatches is part of the result).

RAM: the native backend's static arena (its lifetime plan) vs the liveness lower bound (the most bytes
alive at one op step) vs TFLM's arena for the same model (``print_allocations`` total).

Flash (code + weights): native = text + data of the graph and kernel objects cross-compiled with
``arm-none-eabi-gcc -mcpu=cortex-m4 -Os`` (weights are ``const``, so they are in text), read with
``arm-none-eabi-size``; TFLM = the flatbuffer bytes + the TFLM library's code as estimated in a board
file (``runtime.tflm.flash - runtime.linear.flash`` of a Cortex-M board: no TFLM sources can be
compiled here, so this side is an estimate and is labelled so).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..core.errors import DeviceError, EdgeDigitError, ToolError
from ..core.results import COMPARE, ResultFile, machine
from ..core.stage import MissingPart, Stage, quantized_hashes
from ..core.store import Card, ModelFolder, not_quantized, nothing_trained, read_card, trained_variants
from ..runtimes import RUNTIMES, int8_graph, tflm_arena_bytes

TFLM_INVOKE = "tflite::micro::MicroInterpreter::Invoke()"
NATIVE_RUN = "edgedigit_native_run"
FLASH_BOARD = "nano33ble"
ARM_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os", "-std=c99",
             "-ffunction-sections", "-fdata-sections", "-c")
_TOTALS = re.compile(r"^(?:totals|summary):\s+(\d+)", re.M)

_HARNESS_C = r"""
/* edgedigit bench compare: run the native graph on N int8 inputs read from a file (callgrind harness). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "edgedigit_native_model.h"

int main(int argc, char **argv)
{
    FILE *in, *out;
    long n, i;
    if (argc != 4) { return 2; }
    n = strtol(argv[3], NULL, 10);
    in = fopen(argv[1], "rb");
    out = fopen(argv[2], "wb");
    if (!in || !out) { return 3; }
    for (i = 0; i < n; ++i) {
        if (fread(edgedigit_native_input(), 1, EDGEDIGIT_NATIVE_INPUT_BYTES, in) != EDGEDIGIT_NATIVE_INPUT_BYTES) {
            return 4;
        }
        if (edgedigit_native_run() != 0) { return 5; }
        fwrite(edgedigit_native_output(), 1, EDGEDIGIT_NATIVE_OUTPUT_BYTES, out);
    }
    fclose(in);
    fclose(out);
    return 0;
}
"""

_TFLM_SCRIPT = r"""
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
model, inputs, outputs, arena = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
x = np.load(inputs)
it = runtime.Interpreter.from_bytes(open(model, "rb").read(), arena_size=arena)
shape = tuple(it.get_input_details(0)["shape"])
res = []
for i in range(len(x)):
    it.set_input(x[i].reshape(shape), 0)
    it.invoke()
    res.append(np.array(it.get_output(0)).reshape(-1))
np.save(outputs, np.stack(res))
"""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolError(f"{name} is not installed (needed by edgedigit bench compare)")
    return path


def callgrind_total(out_file: Path) -> int:
    """The total instruction count (Ir) recorded in a callgrind output file.

    Raises:
        ToolError: the file holds no ``totals:``/``summary:`` line.
    """
    text = Path(out_file).read_text(errors="replace")
    m = _TOTALS.findall(text)
    if not m:
        raise ToolError(f"{out_file}: no totals in the callgrind output")
    return int(m[-1])


def _callgrind(cmd: list[str], toggle: str, work: Path, tag: str,
               run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> int:
    out_file = work / f"callgrind.{tag}.out"
    full = [_tool("valgrind"), "--tool=callgrind", "--collect-atstart=no", f"--toggle-collect={toggle}",
            f"--callgrind-out-file={out_file}", *cmd]
    res = run(full, cwd=work, capture_output=True, text=True, timeout=3600)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ToolError(f"valgrind on the {tag} side failed (exit {res.returncode}): {tail}")
    return callgrind_total(out_file)


def _inputs(tflite: Path, variant: str, dataset, n: int) -> np.ndarray:
    """The first ``n`` test images as the model's int8 input, flattened (through the firmware's input table)."""
    from ..core.int8 import quantize_for

    return quantize_for(int8_graph(tflite, variant), dataset.x_test[:n]).reshape(n, -1).astype(np.int8)


def native_instructions(tflite: Path, x: np.ndarray, work: Path, opt: str | None = None) -> tuple[int, np.ndarray]:
    """Total callgrind instructions inside ``edgedigit_native_run`` for the inputs ``x``, and the outputs.

    ``opt`` replaces the host runner's optimization flag (``-O2``), e.g. ``-O3``.
    """
    from ..codegen import native as cg
    from ..core.graph import load_graph
    from ..runtimes.native_host import CFLAGS, host_compiler

    g = load_graph(tflite)
    tag = f"native{opt or ''}"
    src = work / tag
    src.mkdir()
    for name, text in cg.generate_graph(g, variant=tflite.parent.name, source_name=tflite.name).items():
        (src / name).write_text(text)
    (src / "harness.c").write_text(_HARNESS_C)
    flags = [f for f in CFLAGS if f not in ("-shared", "-fPIC", "-pedantic")]
    if opt:
        flags = [opt if f.startswith("-O") else f for f in flags]
    exe = src / "harness"
    res = subprocess.run([host_compiler(), *flags, "-g", "-o", str(exe), *sorted(str(p) for p in src.glob("*.c"))],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise ToolError(f"compiling the native harness failed: {(res.stderr.splitlines() or [''])[0]}")
    (work / "inputs.bin").write_bytes(np.ascontiguousarray(x).tobytes())
    total = _callgrind([str(exe), str(work / "inputs.bin"), str(work / f"{tag}_out.bin"), str(len(x))],
                       NATIVE_RUN, work, tag)
    out = np.frombuffer((work / f"{tag}_out.bin").read_bytes(), np.int8).reshape(len(x), -1)
    return total, out


def tflm_instructions(tflite: Path, x: np.ndarray, work: Path, arena: int) -> tuple[int, np.ndarray]:
    """Total callgrind instructions inside TFLM's ``MicroInterpreter::Invoke`` for ``x``, and the outputs."""
    script = work / "tflm_run.py"
    script.write_text(_TFLM_SCRIPT)
    np.save(work / "inputs.npy", x)
    total = _callgrind([sys.executable, str(script), str(tflite), str(work / "inputs.npy"),
                        str(work / "tflm_out.npy"), str(arena)], TFLM_INVOKE, work, "tflm")
    return total, np.load(work / "tflm_out.npy").astype(np.int8)


def native_flash(tflite: Path, work: Path) -> dict:
    """text + data bytes of the native graph and kernels for a Cortex-M4 (``arm-none-eabi-gcc -Os``)."""
    from ..codegen import native as cg
    from ..core.graph import load_graph

    gcc, size = _tool("arm-none-eabi-gcc"), _tool("arm-none-eabi-size")
    src = work / "arm"
    src.mkdir()
    g = load_graph(tflite)
    for name, text in cg.generate_graph(g, variant=tflite.parent.name, source_name=tflite.name).items():
        (src / name).write_text(text)
    objs = []
    for c in sorted(src.glob("*.c")):
        o = c.with_suffix(".o")
        res = subprocess.run([gcc, *ARM_FLAGS, "-o", str(o), str(c)], capture_output=True, text=True)
        if res.returncode != 0:
            raise ToolError(f"arm-none-eabi-gcc failed on {c.name}: {(res.stderr.splitlines() or [''])[0]}")
        objs.append(o)
    res = subprocess.run([size, "-t", *map(str, objs)], capture_output=True, text=True, check=True)
    total = res.stdout.strip().splitlines()[-1].split()
    text_b, data_b, bss_b = int(total[0]), int(total[1]), int(total[2])
    return {"text": text_b, "data": data_b, "bss": bss_b, "flash": text_b + data_b}


def tflm_library_estimate(board_id: str = FLASH_BOARD) -> tuple[int, str]:
    """TFLM library code bytes as estimated in a board file: ``runtime.tflm.flash - runtime.linear.flash``."""
    from ..targets.boards import load_board

    b = load_board(board_id)
    if "tflm" not in b.runtime or "linear" not in b.runtime:
        raise EdgeDigitError(f"board {board_id} has no runtime.tflm / runtime.linear estimate in {b.path}")
    est = b.runtime["tflm"].flash - b.runtime["linear"].flash
    return est, (f"boards/{b.path.name}: runtime.tflm.flash {b.runtime['tflm'].flash:,} - runtime.linear.flash "
                 f"{b.runtime['linear'].flash:,} ({b.runtime['tflm'].basis})")


def _compares(card: Card) -> bool:
    """True for a model TFLM runs (the kind of the ``tflm`` runtime)."""
    return card.kind == RUNTIMES["tflm"].kind


def compare_variant(variant: str, dataset, images: int = 10, work: Path | None = None) -> dict:
    """Instructions, RAM and flash of native vs TFLM for one trained, quantized variant."""
    from ..codegen.native import plan
    from ..core.graph import load_graph

    folder = ModelFolder(variant)
    card = folder.require_trained()
    if not _compares(card):
        raise EdgeDigitError(f"variant {variant} is {card.kind}: it has no TFLM model to compare "
                             f"({RUNTIMES['tflm'].kind} variants only)")
    tflite = folder.require_quantized(card.kind)
    x = _inputs(tflite, variant, dataset, images)
    mp = plan(load_graph(tflite))
    arena = int(tflm_arena_bytes(tflite))
    tmp = Path(work) if work else Path(tempfile.mkdtemp(prefix="edgedigit-compare-"))
    try:
        n_total, n_out = native_instructions(tflite, x, tmp)
        o3_total, o3_out = native_instructions(tflite, x, tmp, opt="-O3")
        t_total, t_out = tflm_instructions(tflite, x, tmp, arena + 1024)
        flash = native_flash(tflite, tmp)
    finally:
        if work is None:
            shutil.rmtree(tmp, ignore_errors=True)
    lib_est, basis = tflm_library_estimate()
    model_bytes = tflite.stat().st_size
    native_ipi, tflm_ipi = n_total / images, t_total / images
    return {
        "variant": variant,
        "images": images,
        "dataset": dataset.describe(),
        "outputs_mismatch": int(np.sum(n_out.reshape(images, -1) != t_out.reshape(images, -1))
                                + np.sum(o3_out.reshape(images, -1) != t_out.reshape(images, -1))),
        "instructions": {"native": round(native_ipi), "tflm": round(tflm_ipi), "ratio": native_ipi / tflm_ipi,
                         "native_O3": round(o3_total / images), "ratio_O3": o3_total / t_total,
                         "goal": "<= 0.5x", "macs": card.macs,
                         "native_per_mac": native_ipi / card.macs if card.macs else None,
                         "tflm_per_mac": tflm_ipi / card.macs if card.macs else None},
        "ram": {"native_plan": mp.arena_bytes, "lower_bound": mp.lower_bound, "tflm_arena": arena,
                "ratio_to_lower_bound": mp.arena_bytes / mp.lower_bound if mp.lower_bound else None,
                "ratio_to_tflm": mp.arena_bytes / arena, "goal": "<= 1.1x lower bound"},
        "flash": {"native": flash["flash"], "native_detail": flash, "tflm": lib_est + model_bytes,
                  "tflm_model_bytes": model_bytes, "tflm_library_estimate": lib_est,
                  "ratio": flash["flash"] / (lib_est + model_bytes)},
    }


METHOD = {
    "instructions": (f"valgrind callgrind on this host, counting only inside {NATIVE_RUN} (native, host C compiler "
                     f"with the host runner's -O2, and again with -O3) and inside {TFLM_INVOKE} (the tflite-micro "
                     "wheel's reference kernels as shipped); same int8 inputs, outputs compared element for element."),
    "ram": "native static arena from the lifetime plan vs the liveness lower bound vs TFLM's arena total "
           "(print_allocations).",
    "flash": "native: text+data of the graph and kernel objects from arm-none-eabi-gcc -mcpu=cortex-m4 -Os "
             "(arm-none-eabi-size); TFLM: flatbuffer bytes + library estimate from a board file (no TFLM "
             "sources here: an estimate).",
}


def compare(variants: Iterable[str] | None, dataset, images: int = 10,
            on_result: Callable[[dict], None] | None = None) -> dict:
    """Compare every named (default: every trained neural) variant; writes ``results/compare.json``.

    Raises:
        NotTrainedError: nothing to compare. ToolError: valgrind / compilers missing.
    """
    if images < 1:
        raise EdgeDigitError(f"--images {images}: need at least 1 image")
    names = list(variants or []) or _default_variants()
    for tool in ("valgrind", "arm-none-eabi-gcc", "arm-none-eabi-size"):
        _tool(tool)
    host = machine()
    store = ResultFile(COMPARE)
    results = []
    for v in names:
        rec = {"kind": "compare", "edgedigit": __version__, "machine": host, **compare_variant(v, dataset, images)}
        store.append(rec)
        results.append(rec)
        if on_result:
            on_result(rec)
    summary = {"kind": "compare-summary", "dataset": dataset.describe(), "machine": host, "method": METHOD,
               "results": results}
    store.write_summary(summary)
    return summary


TOOLS = ("valgrind", "arm-none-eabi-gcc", "arm-none-eabi-size")  # what compare runs besides the host compiler


def stage(variants: list[Any], dataset_loader: Callable[[], Any], images: int) -> Stage | None:
    """The pipeline's ``bench compare`` stage on the TFLM-comparable variants (None: there is none)."""
    comparable = [v for v in variants if v.kind == RUNTIMES["tflm"].kind]
    if not comparable:
        return None
    names = [v.name for v in comparable]

    def run() -> None:
        absent = [t for t in TOOLS if shutil.which(t) is None]
        if absent:
            raise MissingPart(f"{', '.join(absent)} not installed")
        compare(names, dataset_loader(), images=images)

    return Stage("bench compare",
                 lambda: {**quantized_hashes(comparable), "dataset": dataset_loader().sha256, "images": images},
                 lambda: [ResultFile(COMPARE).summary_path], run)


# ---- on an emulated board: the same images, the same serial protocol, three firmwares ---------------------

# (result key, backend, TFLM kernels): what `bench compare --board` builds for every model
BOARD_FIRMWARES = (("native", "native", None), ("tflm_cmsis_nn", "tflm", "cmsis-nn"),
                   ("tflm_reference", "tflm", "reference"))
BOARD_WARMUP = 1
BOARD_METHOD = {
    "instructions": "median over the images of the firmware's own counter around one inference (ed-run): "
                    "SysTick under QEMU -icount shift=0, i.e. emulated instructions (not cycles of a real chip), "
                    "after one warm-up inference; every firmware gets the same images over the same protocol",
    "flash": "text + data of the whole firmware ELF (arm-none-eabi-size): runner, model, protocol, platform layer, "
             "and for TFLM the interpreter and the model's kernels (int8-only registrations)",
    "ram": "data + bss of the firmware ELF without the reserved stack, plus the stack's high-water mark: the "
           "reset handler paints the stack, QEMU's memory is read back after the run (QMP pmemsave)",
    "outputs": "every raw int8 output of every image compared with the tflite-micro Python interpreter's "
               "(edgedigit.runtimes.run_tflm), element for element",
}


class _Subject:
    """One model to compare: a trained variant or any int8 .tflite given by path."""

    def __init__(self, name: str, tflite: Path, variant: str | None, macs: int | None) -> None:
        self.name, self.tflite, self.variant, self.macs = name, tflite, variant, macs


def _board_subjects(variants: Iterable[str] | None, models: Iterable[Path] | None) -> list[_Subject]:
    """The variants (default, when no model is given either: every trained neural one) and the models.

    Raises:
        NotTrainedError: nothing to compare. EdgeDigitError: a linear variant.
    """
    from ..core.graph import load_graph
    from ..targets.backends import mlperf_id_for

    names = list(variants or [])
    paths = [Path(m) for m in models or []]
    if not names and not paths:
        names = _default_variants()
    out = []
    for v in names:
        folder = ModelFolder(v)
        card = folder.require_trained()
        if not _compares(card):
            raise EdgeDigitError(f"variant {v} is {card.kind}: bench compare --board runs "
                                 f"{RUNTIMES['tflm'].kind} variants only")
        out.append(_Subject(v, folder.require_quantized(card.kind), v, card.macs))
    for p in paths:
        if p.suffix != ".tflite":
            raise EdgeDigitError(f"{p}: --model takes an int8 .tflite file")
        graph = load_graph(p)  # a missing or unreadable file: one clear line now, not after a build
        out.append(_Subject(mlperf_id_for(p.stem) or p.stem, p, None, graph.macs()))  # ad01, not ad01_int8
    return out


def _default_variants() -> list[str]:
    trained = trained_variants()
    neural = [v for v in trained if _compares(read_card(v))]
    names = [v for v in neural if ModelFolder(v).int8_path.is_file()]
    if names:
        return names
    if neural:
        raise not_quantized(neural[0], ModelFolder(neural[0]).int8_path)
    if not trained:
        raise nothing_trained()
    raise EdgeDigitError(f"no {RUNTIMES['tflm'].kind} variant is trained (bench compare needs a TFLM model; "
                         f"trained: {', '.join(trained)}): run `edgedigit train mlp` first")


def run_firmware(board: Any, subject: _Subject, backend: str, kernels: str | None, images: np.ndarray,
                 advance: Callable[[], None] = lambda: None, log: Callable[[str], None] = print) -> dict:
    """Export, build and start one firmware on ``board``, stream ``images`` through it, read its stack back.

    Returns:
        ``counters`` and ``raw`` (one row per image), ``flash``/``ram`` and their parts, the project and the
        TFLM library it linked.

    Raises:
        ToolError, DeviceError: the build, the emulator or the protocol failed (said where).
    """
    from ..targets import devices
    from ..targets.export import export

    res = export(board.id, variant=subject.variant, model=None if subject.variant else subject.tflite,
                 backend=backend, kernels=kernels)
    project = Path(res.path)
    log(f"building {project}")
    devices.make(project)
    spec = devices.run_spec(board)
    elf = project / spec.binary
    sizes = devices.elf_size(elf, spec.size_tool)
    stack_reserved = devices.elf_sections(elf, spec.size_tool).get(".stack", 0)
    heap = devices.heap_symbols(elf, spec.nm_tool)
    if heap:
        raise ToolError(f"{elf}: links heap functions ({', '.join(heap)}); the firmware must not use malloc")
    counters, raw = [], []
    with devices.start(project, board, qmp=True) as running:
        dev = devices.open_device(running, baud=board.serial.baud)
        try:
            info = dev.info()
            if info.model_sha256 != res.model.sha256:
                raise DeviceError(f"{project}: the firmware reports model {info.model_sha256}, not "
                                  f"{res.model.sha256}")
            for _ in range(BOARD_WARMUP):
                dev.classify(images[0].tobytes())
            for img in images:
                r = dev.classify(img.tobytes())
                counters.append(r.counter)
                raw.append(r.raw)
                advance()
            stack = devices.stack_high_water(running, elf, spec.nm_tool)
        finally:
            dev.close()
    static = sizes["data"] + sizes["bss"] - stack_reserved
    return {"counters": counters, "raw": np.array(raw, dtype=np.int64), "counter_unit": info.counter_unit,
            "flash": sizes["flash"], "text": sizes["text"], "data": sizes["data"],
            "bss": sizes["bss"] - stack_reserved, "ram_static": static, "stack_used": stack["stack_used"],
            "stack_reserved": stack["stack_bytes"], "ram": static + stack["stack_used"],
            "project": str(project), "tflm": res.lock["board"]["tflm"],
            "model_flash": res.requirement.model_flash, "arena": res.requirement.arena}


def compare_on_board(board_name: str, variants: Iterable[str] | None = None, models: Iterable[Path] | None = None,
                     dataset: Any = None, images: int = 100, on_result: Callable[[dict], None] | None = None,
                     progress: Callable[[str, int, int], None] | None = None,
                     log: Callable[[str], None] = print) -> dict:
    """Native vs TFLM+CMSIS-NN vs TFLM reference firmwares on an emulated board, per model.

    Every firmware gets the same first ``images`` test images over the same serial protocol. Per model:
    median counter per inference (emulated instructions on qemu-m4) and per MAC, flash (text + data), RAM
    (data + bss + the painted stack's high-water mark), and whether every raw output equals the tflite-micro
    interpreter's. Records go to ``results/compare-<board>.jsonl`` as each model finishes, the summary to
    ``compare-<board>.json`` (keeping the rows of models measured before on the same board, data and number of
    images, so that ``--model X`` adds a row). A firmware that cannot be built here (e.g. kernels the TFLM tree lacks) is
    recorded as missing with the reason.

    Raises:
        BoardError: the board is not started here (no ``[run]``). NotTrainedError / EdgeDigitError: nothing
            to compare. ToolError / DeviceError: a build or a run failed.
    """
    from ..core.errors import BoardError, UnsupportedOpError
    from ..core.graph import load_graph
    from ..core.int8 import io_spec, quantize_for
    from ..core.results import compare_board_name
    from ..runtimes import run_tflm
    from ..targets import devices
    from ..targets.boards import load_board
    from ..targets.export import resolve_model
    from .bench_device import model_feed

    if images < 1:
        raise EdgeDigitError(f"--images {images}: need at least 1 image")
    board = load_board(board_name)
    spec = devices.run_spec(board)
    if spec.kind != "qemu":
        raise BoardError(f"bench compare --board runs on an emulated board with a counter of instructions "
                         f"(qemu-m4), not {board.id}")
    subjects = _board_subjects(variants, models)
    if dataset is None:
        from ..models.data import load_dataset

        dataset = load_dataset(None)
    n = min(images, len(dataset.x_test))
    pixels = np.ascontiguousarray(dataset.x_test[:n])
    store = ResultFile(compare_board_name(board.id))
    host = machine()
    note = str(board.run.get("counter_note", ""))
    results = []
    for subject in subjects:
        graph = load_graph(subject.tflite)
        if subject.variant is not None or io_spec(graph).image:  # a digit classifier: the test images' pixels
            rows = pixels
            reference = np.asarray(run_tflm(subject.tflite, quantize_for(graph, pixels))).reshape(n, -1)
            described = dataset.describe()
        else:  # any other model: bench device's seeded random inputs, the same on every firmware
            feed = model_feed(resolve_model(model=subject.tflite), n)
            rows, reference, described = feed.rows, feed.reference, feed.description
        reference = reference.astype(np.int64)
        runs: dict[str, dict] = {}
        missing: dict[str, str] = {}
        for key, backend, kernels in BOARD_FIRMWARES:
            label = f"{subject.name} {key}"

            def advance(done=[0], label=label) -> None:  # noqa: B006 - a counter per firmware
                done[0] += 1
                if progress is not None:
                    progress(label, done[0], n)

            try:
                runs[key] = run_firmware(board, subject, backend, kernels, rows, advance, log)
            except (BoardError, UnsupportedOpError) as e:  # this firmware cannot be built here: say why
                missing[key] = str(e)
                log(f"{label}: not built ({e})")
        rec = _board_record(board, subject, runs, missing, reference, described, n, note)
        rec.update({"machine": host, "edgedigit": __version__})
        store.append(rec)
        results.append(rec)
        if on_result is not None:
            on_result(rec)
    summary = {"kind": "compare-board-summary", "board": board.id, "dataset": dataset.describe(), "images": n,
               "counter_note": note, "machine": host, "method": BOARD_METHOD,
               "results": _kept_rows(store.summary(), board.id, dataset, n, results) + results}
    store.write_summary(summary)
    return summary


def _kept_rows(previous: dict | None, board: str, dataset: Any, n: int, results: list[dict]) -> list[dict]:
    """The rows of the previous summary that this run did not measure again, when it was measured the same way
    (same board, dataset and number of images): comparing one more model keeps the others in the report."""
    if not previous or previous.get("kind") != "compare-board-summary" or previous.get("board") != board \
            or previous.get("images") != n or (previous.get("dataset") or {}).get("sha256") != dataset.sha256:
        return []
    again = {r.get("variant") for r in results}
    return [r for r in previous.get("results", []) if isinstance(r, dict) and r.get("variant") not in again]


def _board_record(board: Any, subject: _Subject, runs: dict[str, dict], missing: dict[str, str],
                  reference: np.ndarray, dataset: Any, n: int, note: str) -> dict:
    """One model's comparison record from its firmwares' runs (``dataset``: what the inputs were)."""
    med = {k: float(np.median(r["counters"])) for k, r in runs.items()}
    same = {k: bool(np.array_equal(r["raw"], reference)) for k, r in runs.items()}
    rec = {
        "kind": "compare-board", "board": board.id, "variant": subject.name, "model": str(subject.tflite),
        "model_sha256": _sha(subject.tflite), "images": n, "dataset": dataset, "macs": subject.macs,
        "counter_unit": next((r["counter_unit"] for r in runs.values()), None), "counter_note": note,
        "instructions": {k: round(v) for k, v in med.items()},
        "instructions_per_mac": {k: v / subject.macs for k, v in med.items()} if subject.macs else None,
        "flash": {k: r["flash"] for k, r in runs.items()},
        "ram": {k: r["ram"] for k, r in runs.items()},
        "ram_detail": {k: {f: r[f] for f in ("data", "bss", "ram_static", "stack_used", "stack_reserved")}
                       for k, r in runs.items()},
        "outputs_identical": same,
        "images_identical": {k: int((r["raw"] == reference).all(axis=1).sum()) for k, r in runs.items()},
        "elements_identical": {k: int((r["raw"] == reference).sum()) for k, r in runs.items()},
        "elements": int(reference.size),
        "firmware": {k: {f: r[f] for f in ("project", "text", "data", "tflm", "model_flash", "arena")}
                     for k, r in runs.items()},
        "missing": missing,
    }
    if "native" in med and "tflm_cmsis_nn" in med:
        rec["native_over_tflm_cmsis_nn"] = {
            "instructions": med["native"] / med["tflm_cmsis_nn"],
            "flash": runs["native"]["flash"] / runs["tflm_cmsis_nn"]["flash"],
            "ram": runs["native"]["ram"] / runs["tflm_cmsis_nn"]["ram"]}
    return rec


def _sha(path: Path) -> str:
    from ..core.fsutil import sha256_file

    return sha256_file(path)
