"""``edgedigit bench device``: the model on a device, measured over serial.

For the boards without hardware (``host``, ``qemu-m4``) the firmware is exported (or, with ``--project``,
an exported project is taken as it is), built with make and started here; a real board is reached through
``--port``. Then:

1. handshake: the device's model sha256 (``ed-info``) must equal the host model file's, and the CRC-32 the
   firmware computed at boot over its model data in flash must equal the one computed on the host from the
   model it validated (a model array patched after export is refused), else refuse;
2. warm-up: a few inferences that are not recorded;
3. stream N inputs (``ed-run DATA``): predicted class, raw outputs and the device counter for each; every raw
   output is compared with TFLM's on the host (the ``tflm`` host runtime), element for element. A trained
   variant gets the test images; any int8 model (``--model``) gets the inputs of ``--inputs X.npy`` (int8 or
   uint8, the model's input shape) or seeded random ones;
4. every sample is appended to the session in progress, ``build/results/device-<board>-<variant>.jsonl.partial``,
   as it arrives (flushed and fsynced per line), so a device that dies mid-run (or Ctrl-C) loses nothing and
   ``--resume`` continues from it; the complete result of an earlier run, ``device-<board>-<variant>.jsonl``,
   is not touched until the new session is complete and replaces it;
5. the summary (latency median/p95/p99/min/max in µs and counter units, accuracy with its dataset,
   agreement with TFLM, the session id) goes to ``device-<board>-<variant>.json``.

Before a project is built here it is checked against its ``edgedigit.lock.json`` (``targets.pio.before_build``):
an edited file is refused by name; ``force`` builds it anyway and the session and summary record it.

On ``qemu-m4`` the counter counts emulated instructions, not cycles of a real chip; every output says so.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import BoardError, DeviceError, EdgeDigitError, ModelError, ToolError
from ..core.results import ResultFile, device_name, machine, read_jsonl
from ..core.stage import Stage, file_hash, quantized_hashes
from ..core.store import Card, ModelFolder
from ..runtimes import RUNTIMES

WARMUP_RUNS = 5
REFERENCE = "tflm"  # the host runtime whose raw outputs the device's must equal


def _int8_model(variant: str) -> tuple[ModelFolder, Card, Path]:
    """The variant's folder, card and int8 model file.

    Raises:
        NotTrainedError: not trained, or not quantized. EdgeDigitError: a model TFLM does not run.
    """
    folder = ModelFolder(variant)
    card = folder.require_trained()
    if card.kind != RUNTIMES[REFERENCE].kind:
        raise EdgeDigitError(f"variant {variant} is a {card.kind} model; bench device compares raw outputs with "
                             f"TFLM and runs {RUNTIMES[REFERENCE].kind} variants only")
    return folder, card, folder.require_quantized(card.kind)


def model_source(variant: str, model: Path | None = None) -> Any:
    """The model ``bench device`` runs, as the export stage sees it (``targets.backends.ModelSource``): the
    trained variant's int8 model, or any int8 .tflite.

    Raises:
        NotTrainedError: the variant is not trained or not quantized. ModelError: an unusable model file.
    """
    from ..targets.export import resolve_model

    if model is not None:
        return resolve_model(model=Path(model))
    _int8_model(variant)
    return resolve_model(variant=variant)


@dataclass
class Feed:
    """What is streamed to the device: rows of input bytes as it receives them, their labels (or None), the
    TFLM reference outputs, and how to describe where they came from."""

    rows: np.ndarray  # uint8 (M, input bytes)
    labels: np.ndarray | None
    reference: np.ndarray  # TFLM's raw outputs (M, outputs)
    description: Any  # the dataset's describe(), or a dict naming the inputs file / the random seed

    def payload(self, i: int) -> bytes:
        return self.rows[i].tobytes()

    def label(self, i: int) -> int | None:
        return int(self.labels[i]) if self.labels is not None else None


RANDOM_INPUTS_SEED = 0


def model_feed(src: Any, samples: int, inputs: Path | None = None, labels: Path | None = None) -> Feed:
    """Inputs for any int8 model: ``inputs`` (a .npy of int8/uint8 inputs, or raw uint8 pixels for a digit
    classifier) or ``samples`` seeded random ones, with TFLM's reference outputs on the host.

    Raises:
        EdgeDigitError: an unreadable file, a wrong dtype or shape, labels of another length (names the file).
    """
    from ..codegen.tflm import device_input
    from ..runtimes import run_tflm

    spec = src.io
    if inputs is not None:
        x = _load_npy(Path(inputs), "--inputs")
        want = np.uint8 if spec.image else spec.input_dtype
        if x.dtype != want:
            raise EdgeDigitError(f"{inputs}: {x.dtype.name} inputs; {src.path} takes {np.dtype(want).name}"
                                 + (" raw pixels" if spec.image else ""))
        if x.ndim < 1 or x.reshape(len(x), -1).shape[1] != spec.input_bytes:
            raise EdgeDigitError(f"{inputs}: inputs of shape {x.shape}; {src.path} takes {spec.input_bytes} values "
                                 f"per input (shape {spec.input_shape})")
        rows = np.ascontiguousarray(x.reshape(len(x), -1)).view(np.uint8)
        description: Any = {"name": Path(inputs).name, "source": str(inputs), "inputs": len(rows),
                            "sha256": _sha256_array(x)}
    else:
        rng = np.random.default_rng(RANDOM_INPUTS_SEED)
        rows = rng.integers(0, 256, (samples, spec.input_bytes), dtype=np.uint8)
        description = {"name": "random", "source": f"numpy default_rng({RANDOM_INPUTS_SEED}) bytes",
                       "inputs": samples}
    y = None
    if labels is not None:
        y = _load_npy(Path(labels), "--labels").reshape(-1)
        if len(y) != len(rows):
            raise EdgeDigitError(f"{labels}: {len(y)} labels for {len(rows)} inputs")
    reference = np.asarray(run_tflm(src.path, device_input(src.graph, spec, rows))).reshape(len(rows), -1)
    return Feed(rows, y, reference, description)


def _load_npy(path: Path, option: str) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError) as e:
        raise EdgeDigitError(f"{path}: {option} needs a readable .npy file ({e or 'empty file'})") from None


def _sha256_array(x: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


def check_model_data(info: Any, src: Any, where: str) -> None:
    """The firmware's boot CRC-32 of its model data (``ed-info``) must equal the host's for ``src``.

    Raises:
        DeviceError: they differ (the firmware's model arrays were changed after export), naming both.
    """
    from ..targets.backends import BACKENDS

    if info.backend not in BACKENDS:
        raise DeviceError(f"port {where}: the device reports backend {info.backend!r}, not one of edgedigit's "
                          f"({', '.join(BACKENDS)})")
    expected = f"{BACKENDS[info.backend].model_crc32(src):08x}"
    if info.model_crc32 != expected:
        raise DeviceError(f"port {where}: the firmware's model data has CRC-32 {info.model_crc32}, but {src.path} "
                          f"({info.backend} backend) gives {expected}: its model arrays were changed after export; "
                          "export and build it again")


def export_project(board: Any, variant: str, backend: str, kernels: str | None = None) -> Path:
    """Export the firmware project for ``board`` through ``edgedigit.targets.export``.

    Returns:
        The project root (holds the Makefile).
    """
    from ..targets import export as firmware

    return Path(firmware.export(board.id, variant=variant, backend=backend, kernels=kernels).path)


def check_project(project: Path, board: Any, variant: str, model: Path, sha256: str,
                  source: str | None = None) -> dict[str, Any]:
    """The lock record of an exported project, checked to be for ``board`` and this very model.

    Args:
        project: the project folder (holds ``edgedigit.lock.json``).
        board: the board it is to run on.
        variant: the variant (named in the advice).
        model: the variant's int8 model file.
        sha256: that file's sha256.
        source: how the export command names the model (default ``--variant <variant>``).

    Returns:
        The lock record.

    Raises:
        ModelError: not an exported project, or exported from another model. BoardError: for another board.
    """
    from ..targets.export import LOCK_FILE

    source = source or f"--variant {variant}"
    again = f"export it again (`edgedigit export --board {board.id} {source}`) or leave out --project"
    lock_path = Path(project) / LOCK_FILE
    try:
        lock = json.loads(lock_path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{project}: not an exported firmware project (no {LOCK_FILE}); "
                         f"export one with `edgedigit export --board {board.id} {source}`") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"{lock_path}: unreadable ({e}); {again}") from None
    lock = lock if isinstance(lock, dict) else {}
    locked_model = lock.get("model") if isinstance(lock.get("model"), dict) else {}
    if locked_model.get("sha256") != sha256:
        raise ModelError(f"{project}: exported from model {locked_model.get('sha256')}, but {model} is {sha256}; "
                         f"{again}")
    locked_board = lock.get("board") if isinstance(lock.get("board"), dict) else {}
    if locked_board.get("id") != board.id:
        raise BoardError(f"{project}: exported for board {locked_board.get('id')}, not {board.id}; {again}")
    return lock


def _read_results(path: Path) -> tuple[dict[str, Any] | None, dict[int, dict[str, Any]]]:
    """The first session header and the samples (by index) in a results file; a torn last line is skipped."""
    return _session(read_jsonl(path))


def _session(records: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, dict[int, dict[str, Any]]]:
    """The first session header and the samples (by index) among a session's records."""
    header = None
    samples: dict[int, dict[str, Any]] = {}
    for rec in records:
        if rec.get("type") == "session" and header is None:
            header = rec
        elif rec.get("type") == "sample":
            samples[int(rec["index"])] = rec
    return header, samples


@contextlib.contextmanager
def _connect(board: Any, port: str | None, variant: str, backend: str, project: Path | None,
             log: Callable[[str], None], force: bool = False,
             kernels: str | None = None, model: Path | None = None) -> Iterator[tuple[Any, Any, dict[str, Any]]]:
    """Yield (device, running-or-None, firmware facts) for a real port or a started host/qemu firmware."""
    from ..targets import devices
    from ..targets.pio import before_build
    from ..targets.protocol import Device

    if port is not None:
        with Device(port, baud=board.serial.baud, open_timeout=2.0) as dev:
            dev.sync()
            yield dev, None, {}
        return
    spec = devices.run_spec(board)
    if project is None and model is not None:
        from ..targets import export as firmware

        project = Path(firmware.export(board.id, model=Path(model), backend=backend,
                                              kernels=kernels).path)
    elif project is None:
        project = export_project(board, variant, backend, kernels)
    checked = before_build(board, project, force, warn=log)
    log(f"building {project}")
    devices.make(project)
    facts: dict[str, Any] = {"project": str(project), **checked}
    elf = project / spec.binary
    if spec.size_tool:
        sizes = devices.elf_size(elf, spec.size_tool)
        devices.check_fits(sizes, board, elf)
        facts["size"] = sizes
    if spec.nm_tool:
        heap = devices.heap_symbols(elf, spec.nm_tool)
        if heap:
            raise ToolError(f"{elf}: links heap functions ({', '.join(heap)}); the firmware must not use malloc")
        facts["heap_symbols"] = heap
    with devices.start(project, board) as running:
        dev = devices.open_device(running, baud=board.serial.baud)
        try:
            yield dev, running, facts
        finally:
            dev.close()


def bench_device(board_name: str, variant: str = "mlp", *, backend: str = "native", port: str | None = None,
                 project: Path | None = None, samples: int = 200, resume: bool = False, data: Path | None = None,
                 progress: bool = True, log: Callable[[str], None] = print,
                 on_sample: Callable[[int, Any], None] | None = None, force: bool = False,
                 kernels: str | None = None, model: Path | None = None, inputs: Path | None = None,
                 labels: Path | None = None) -> dict[str, Any]:
    """Run the on-device benchmark and validation; see the module docstring.

    Args:
        board_name: board id or alias.
        variant: trained variant whose ``model_int8.tflite`` is on (or goes to) the device.
        backend: firmware backend for the boards built here (when no ``project`` is given).
        port: serial port or pyserial URL of a real board (then nothing is built or started).
        project: an exported project to build and start as it is (no export); its ``edgedigit.lock.json``
            must name this board and the variant's int8 model (same sha256).
        samples: number of inferences streamed: the first N test images (beyond the test set's size the
            images repeat from the start, for long runs).
        resume: continue the session on disk (the interrupted one, else the complete one) instead of
            starting a new one.
        data: dataset path (default: ``$EDGEDIGIT_DATA`` / the usual resolution).
        progress: show a progress bar.
        log: where progress messages go.
        on_sample: called after each sample is on disk with (samples done, running firmware) (tests).
        force: build a project that differs from its lock file anyway (recorded under ``firmware``).
        kernels: with backend tflm on a board that compiles TFLM (qemu-m4, host): the TFLM kernels.
        model: any int8 .tflite instead of ``variant`` (its inputs: ``inputs`` or seeded random ones).
        inputs: a .npy of inputs for ``model`` (int8/uint8 in its input shape; raw uint8 pixels for a digit
            classifier); default: ``samples`` seeded random inputs.
        labels: a .npy of class labels for ``inputs`` (the summary then has an accuracy).

    Returns:
        The summary written to ``device-<board>-<variant>.json``.

    Raises:
        NotTrainedError: the variant is not trained or not quantized.
        ModelError / BoardError: ``project`` was exported from another model or for another board.
        DeviceError: wrong model on the device, protocol failure or the device died (the message says how
            many results are on disk and to use --resume).
    """
    from ..core.fsutil import sha256_file
    from ..models.data import load_dataset
    from ..targets.boards import load_board
    from .stats import summarize

    board = load_board(board_name)
    if samples < 1:
        raise EdgeDigitError(f"--samples must be at least 1, got {samples}")
    if project is not None and port is not None:
        raise EdgeDigitError(f"--project {project} and --port {port}: a project is built and started here, a port "
                             "is a board already running its firmware; give one of them")
    if (inputs is not None or labels is not None) and model is None:
        raise EdgeDigitError("--inputs and --labels go with --model (a trained variant is run on its test set)")
    src = model_source(variant, model)
    variant, card, tflite = src.name, src.card, src.path
    host_sha = sha256_file(tflite)
    if project is not None:
        check_project(project, board, variant, tflite, host_sha, f"--model {model}" if model is not None else None)
    n = samples  # more samples than inputs cycle through them (long runs)
    if model is None:
        dataset = load_dataset(data)
        m = min(n, len(dataset.x_test))
        images = dataset.x_test[:m]
        feed = Feed(images.reshape(m, -1), dataset.y_test[:m],
                    np.asarray(RUNTIMES[REFERENCE].load(ModelFolder(variant)).raw(images)).reshape(m, -1), dataset.describe())
    else:
        feed = model_feed(src, samples, inputs, labels)
        m = len(feed.rows)
    reference = feed.reference

    results = ResultFile(device_name(board.id, variant))
    out = results.jsonl
    source, records = results.resume_session() if resume else (out, [])
    header, done = _session(records)
    if resume and header is not None:
        if header.get("model_sha256") != host_sha or header.get("dataset") != feed.description:
            raise DeviceError(f"{source}: was recorded with model {header.get('model_sha256')} on "
                              f"{header.get('dataset')!r}; now {host_sha} on {feed.description!r}; "
                              "run without --resume to start again")
    done = {i: r for i, r in done.items() if i < n}
    note = str(board.run.get("counter_note", ""))
    if done:
        log(f"resuming: {len(done)} of {n} samples already in {source}")

    with _connect(board, port, variant, backend, project, log, force, kernels, model) as (dev, running, facts):
        where = port or running.url
        info = dev.info()
        if info.model_sha256 != host_sha:
            raise DeviceError(f"port {where}: the device runs model {info.model_sha256}, but {tflite} is {host_sha}; "
                              "export and flash this model first")
        check_model_data(info, src, where)
        connection = {"type": "session", "board": board.id, "variant": variant, "backend": info.backend,
                      "model_sha256": host_sha, "dataset": feed.description, "machine": machine(),
                      "port": where, "counter_unit": info.counter_unit, "counter_note": note, "samples": n,
                      "device": info.as_dict(), "firmware": facts}
        if header is None:
            session = results.start_session(connection)
        else:  # the same session continues: one more connection header (a file from before ids: a new id)
            session = str(header.get("session") or secrets.token_hex(8))
            results.continue_session({**connection, "session": session})
        first = feed.payload(0)
        for _ in range(WARMUP_RUNS):
            dev.classify(first)
        todo = [i for i in range(n) if i not in done]

        def saved() -> str:
            kept = f"; the complete earlier result in {out} is kept" if out.is_file() else ""
            return (f"{len(done)} of {n} results are saved in {results.partial}{kept}; "
                    "run the same command with --resume to finish")

        try:
            with _progress(progress, len(todo), f"{board.id}: streaming {len(todo)} images") as advance:
                for i in todo:
                    r = dev.classify(feed.payload(i % m))
                    ref = [int(v) for v in reference[i % m]]
                    rec = {"type": "sample", "index": i, "image": i % m, "label": feed.label(i % m),
                           "predicted": r.predicted,
                           "raw": list(r.raw), "tflm": ref, "agree": list(r.raw) == ref, "counter": r.counter,
                           "us": r.us}
                    results.append_partial(rec)
                    done[i] = rec
                    advance()
                    if on_sample is not None:
                        on_sample(len(done), running)
        except DeviceError as e:
            raise DeviceError(f"{e}; {saved()}") from None
        except KeyboardInterrupt:
            log(f"interrupted: {saved()}")
            raise

    recs = [done[i] for i in range(n)]
    counters = [r["counter"] for r in recs]
    raw_dev = np.array([r["raw"] for r in recs])
    raw_ref = np.array([r["tflm"] for r in recs])
    lat = summarize(counters, "device counter")
    summary: dict[str, Any] = {
        "board": board.id, "variant": variant, "backend": info.backend, "model_sha256": host_sha,
        "model_crc32": info.model_crc32, "dataset": feed.description, "machine": machine(), "samples": n,
        "counter_unit": info.counter_unit, "counter_note": note,
        "latency_counter": lat.as_dict(), "latency_us": _latency_us(recs, info.counter_unit),
        "accuracy": float(np.mean([r["predicted"] == r["label"] for r in recs]))
        if all(r["label"] is not None for r in recs) else None,
        "agreement": {"images_identical": int(sum(r["agree"] for r in recs)), "images": n,
                      "elements_identical": int((raw_dev == raw_ref).sum()), "elements": int(raw_ref.size),
                      "reference": REFERENCE},
        "predictions_match_tflm": int(sum(r["predicted"] == int(np.argmax(r["tflm"])) for r in recs)),
        "device": info.as_dict(), "firmware": facts, "results_file": str(out), "session": session,
    }
    if card is not None and card.macs:
        summary["macs"] = int(card.macs)
        summary["counter_per_mac"] = lat.median / int(card.macs)
    results.finish_session(summary)
    return summary


def _latency_us(recs: list[dict[str, Any]], unit: str) -> dict[str, Any]:
    """Latency in µs: from the counter when it counts nanoseconds or emulated instructions (-icount shift=0:
    one emulated nanosecond per instruction), else the device's own µs figure."""
    from .stats import summarize

    if unit in ("ns", "instructions"):
        return summarize([r["counter"] / 1000.0 for r in recs], "latency").as_dict()
    return summarize([r["us"] for r in recs], "latency").as_dict()


@contextlib.contextmanager
def _progress(enabled: bool, total: int, what: str) -> Iterator[Callable[[], None]]:
    if not enabled:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda: bar.advance(task)


def stage(board: Any, variant: Any, project: Path, samples: int, data: Path | None,
          dataset_loader: Callable[[], Any]) -> Stage:
    """The pipeline's ``bench device <board> <variant>`` stage on the project the export stage wrote.

    Args:
        board: the board (a ``targets.boards.Board`` that builds and runs here).
        variant: the variant registry's entry.
        project: the exported firmware project (from the export stage: no second export).
        samples: images streamed.
        data: the dataset path given to the pipeline.
        dataset_loader: returns the dataset (its hash is an input).
    """
    from ..targets.export import LOCK_FILE

    def run() -> None:
        bench_device(board.id, variant.name, project=project, samples=samples, data=data, progress=True)

    results = ResultFile(device_name(board.id, variant.name))
    return Stage(f"bench device {board.id} {variant.name}",
                 lambda: {"model": quantized_hashes([variant])[variant.name], "board": file_hash(board.path),
                          "project": file_hash(project / LOCK_FILE), "samples": samples,
                          "dataset": dataset_loader().sha256},
                 lambda: [results.summary_path, results.jsonl], run, results.incomplete)


def runs_on_device(variant: Any) -> bool:
    """Whether ``bench device`` runs this variant: it compares raw outputs with TFLM, so TFLM's kind only."""
    return variant.kind == RUNTIMES[REFERENCE].kind
