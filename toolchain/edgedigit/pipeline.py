"""``edgedigit pipeline --board B``: every stage in order, each skipped when it is up to date.

Stages: train -> quantize (per variant) -> validate -> bench host -> stress (the seed's variants) ->
bench compare (native vs TFLM, neural variants) -> export -> device bench (per neural variant, on boards
that run here: ``host``, ``qemu-m4``) -> report.

Up to date means: the stage's stamp file (``build/stamps/<stage>.json``) records the same inputs (sha256
of the input files and the settings that shape the output) and every output file still has the sha256
recorded when the stage last ran. Hashes, not modification times: a file rewritten with the same bytes
does not re-run anything, an edited one does. ``--force`` re-runs every stage.

One line per stage: ``ran``, ``skipped (up to date)``, ``missing part (...)`` when the module that
implements it is not available, ``not applicable (...)`` (e.g. the model does not fit the board), or
``blocked (...)`` when an input an earlier stage should have made is absent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .core.errors import EdgeDigitError
from .core.fsutil import sha256_file, write_json
from .core.paths import build_dir, model_dir, results_dir

SEED_STRESS = ("mlp", "mlp-pruned", "rfe-lr")


class Blocked(Exception):
    """An input of a stage does not exist (an earlier stage did not produce it)."""


class MissingPart(Exception):
    """The module implementing a stage is not available in this installation."""


class NotApplicable(Exception):
    """The stage does not apply (e.g. the model does not fit the board); the reason is printed."""


@dataclass
class Stage:
    """One step of the pipeline.

    ``inputs()`` returns what the outputs depend on (file hashes and settings; raise :class:`Blocked` when
    an input file is absent), ``outputs()`` the files the stage writes, ``run()`` does the work (raise
    :class:`MissingPart` when its implementation is not available).
    """

    name: str
    inputs: Callable[[], dict[str, Any]]
    outputs: Callable[[], list[Path]]
    run: Callable[[], None]


@dataclass
class StageResult:
    """What happened to one stage; ``line()`` is what the pipeline prints."""

    name: str
    status: str  # ran | skipped | missing | not-applicable | blocked
    detail: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        if self.status == "ran":
            return f"{self.name}: ran ({self.seconds:.1f} s)"
        if self.status == "skipped":
            return f"{self.name}: skipped (up to date)"
        if self.status == "missing":
            return f"{self.name}: missing part ({self.detail})"
        if self.status == "not-applicable":
            return f"{self.name}: not applicable ({self.detail})"
        return f"{self.name}: blocked ({self.detail})"


def stamps_dir() -> Path:
    """``build/stamps``: one JSON stamp per stage (its inputs and output hashes when it last ran)."""
    return build_dir() / "stamps"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def file_hash(path: Path) -> str:
    """sha256 of an input file.

    Raises:
        Blocked: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise Blocked(f"{path} missing")
    return sha256_file(path)


def _output_hashes(paths: Iterable[Path]) -> dict[str, str] | None:
    out = {}
    for p in paths:
        if not Path(p).is_file():
            return None
        out[str(p)] = sha256_file(p)
    return out


def up_to_date(stage: Stage, inputs: dict[str, Any]) -> bool:
    """True when the stage's stamp records ``inputs`` and every output still has its recorded hash."""
    stamp = stamps_dir() / f"{_slug(stage.name)}.json"
    if not stamp.is_file():
        return False
    try:
        recorded = json.loads(stamp.read_text())
    except ValueError:
        return False
    if recorded.get("inputs") != json.loads(json.dumps(inputs, sort_keys=True, default=str)):
        return False
    outs = _output_hashes(stage.outputs())
    return outs is not None and outs == recorded.get("outputs")


def run_stages(stages: Iterable[Stage], force: bool = False, echo: Callable[[str], None] = print) -> list[StageResult]:
    """Run each stage unless it is up to date; print and return one result per stage.

    Raises:
        EdgeDigitError: a stage failed (its own error) or ran without writing a declared output.
    """
    results = []
    for stage in stages:
        try:
            inputs = stage.inputs()
        except Blocked as e:
            res = StageResult(stage.name, "blocked", str(e))
        else:
            if not force and up_to_date(stage, inputs):
                res = StageResult(stage.name, "skipped")
            else:
                t0 = time.perf_counter()
                try:
                    stage.run()
                except MissingPart as e:
                    res = StageResult(stage.name, "missing", str(e))
                except NotApplicable as e:
                    res = StageResult(stage.name, "not-applicable", str(e))
                except Blocked as e:
                    res = StageResult(stage.name, "blocked", str(e))
                else:
                    outs = _output_hashes(stage.outputs())
                    if outs is None:
                        absent = [str(p) for p in stage.outputs() if not Path(p).is_file()]
                        raise EdgeDigitError(f"pipeline stage '{stage.name}' ran but did not write {', '.join(absent)}")
                    write_json(stamps_dir() / f"{_slug(stage.name)}.json",
                               {"stage": stage.name, "edgedigit": __version__, "inputs": inputs, "outputs": outs})
                    res = StageResult(stage.name, "ran", seconds=time.perf_counter() - t0)
        echo(res.line())
        results.append(res)
    return results


# ------------------------------------------------------------------------------------------ real stages


@dataclass
class PipelineConfig:
    """The settings every stage of one pipeline run shares."""

    board: str
    variants: list[str] = field(default_factory=list)
    seed: int = 0
    epochs: int | None = None
    samples: int = 1000
    calibration_samples: int = 500
    stress_iterations: int = 1000
    bench_runs: int = 200
    compare_images: int = 10
    data: Path | None = None


def _card_files(variant: str) -> dict[str, str]:
    p = model_dir(variant) / "card.json"
    if not p.is_file():
        return {}
    return dict(json.loads(p.read_text()).get("files") or {})


def _train_outputs(variant: str) -> list[Path]:
    """The trained float model file (``card.files.float``, else model.keras / model.joblib).

    Not card.json: ``quantize`` rewrites the card, which must not make the training look stale.
    """
    folder = model_dir(variant)
    name = _card_files(variant).get("float")
    if name:
        return [folder / name]
    for candidate in ("model.keras", "model.joblib"):
        if (folder / candidate).is_file():
            return [folder / candidate]
    return [folder / "model.keras"]


def _quantized_outputs(variant: str, kind: str) -> list[Path]:
    return [model_dir(variant) / ("model_fixed.npz" if kind == "linear" else "model_int8.tflite")]


def _import(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(f"edgedigit.{module}")
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("edgedigit"):
            raise MissingPart(f"edgedigit.{module} is not available: {what}") from None
        raise


def build_stages(cfg: PipelineConfig, dataset_loader: Callable[[], Any]) -> list[Stage]:
    """The real stages for ``cfg``; ``dataset_loader`` is called once, when a stage first needs data."""
    from .models.variants import SEED_VARIANTS, get_variant
    from .targets.backends import default_backend
    from .targets.boards import load_board

    board = load_board(cfg.board)
    names: list[str] = []

    def add(name: str) -> None:  # dependencies first (mlp before mlp-pruned)
        for dep in get_variant(name).requires:
            add(dep)
        if name not in names:
            names.append(name)

    for n in cfg.variants or SEED_VARIANTS:
        add(n)
    variants = [get_variant(n) for n in names]
    cache: dict[str, Any] = {}

    def ds() -> Any:
        if "ds" not in cache:
            cache["ds"] = dataset_loader()
        return cache["ds"]

    def ds_id() -> str:
        return ds().sha256

    stages: list[Stage] = []
    for v in variants:
        def train_inputs(v=v) -> dict:
            deps = {d: [file_hash(p) for p in _train_outputs(d)] for d in v.requires}
            return {"dataset": ds_id(), "seed": cfg.seed, "epochs": cfg.epochs, "requires": deps}

        def train_run(v=v) -> None:
            from .models.train import train_variants

            train_variants([v.name], ds(), seed=cfg.seed, epochs=cfg.epochs)

        stages.append(Stage(f"train {v.name}", train_inputs, lambda v=v: _train_outputs(v.name), train_run))

    for v in variants:
        def q_inputs(v=v) -> dict:
            return {"model": [file_hash(p) for p in _train_outputs(v.name)], "dataset": ds_id(),
                    "calibration_samples": cfg.calibration_samples, "seed": cfg.seed}

        def q_run(v=v) -> None:
            from .models.quantize import quantize_variants

            quantize_variants([v.name], ds(), calibration_samples=cfg.calibration_samples, seed=cfg.seed)

        stages.append(Stage(f"quantize {v.name}", q_inputs, lambda v=v: _quantized_outputs(v.name, v.kind), q_run))

    def quantized_inputs() -> dict:
        return {v.name: file_hash(_quantized_outputs(v.name, v.kind)[0]) for v in variants}

    def validate_run() -> None:
        _import("measure.validate", "edgedigit validate").validate_variants(names, ds())

    stages.append(Stage("validate", lambda: {**quantized_inputs(), "dataset": ds_id()},
                        lambda: [results_dir() / "validate.json"], validate_run))

    def host_run() -> None:
        from .measure.bench_host import HostBenchConfig, bench_host

        bench_host(names, ds(), HostBenchConfig(runs=cfg.bench_runs))

    stages.append(Stage("bench host", lambda: {**quantized_inputs(), "dataset": ds_id(), "runs": cfg.bench_runs},
                        lambda: [results_dir() / "bench-host.json"], host_run))

    stress_names = [n for n in names if n in SEED_STRESS]
    if stress_names:
        def stress_run() -> None:
            from .measure.bench_stress import StressConfig, stress

            stress(stress_names, ds(), StressConfig(iterations=cfg.stress_iterations))

        stages.append(Stage("bench stress", lambda: {**{k: h for k, h in quantized_inputs().items() if k in stress_names},
                                                     "dataset": ds_id(), "iterations": cfg.stress_iterations},
                            lambda: [results_dir() / "stress.json"], stress_run))

    neural_names = [v.name for v in variants if v.kind == "neural"]
    if neural_names:
        def compare_run() -> None:
            import shutil

            from .measure.bench_compare import compare

            absent = [t for t in ("valgrind", "arm-none-eabi-gcc", "arm-none-eabi-size") if shutil.which(t) is None]
            if absent:
                raise MissingPart(f"{', '.join(absent)} not installed")
            compare(neural_names, ds(), images=cfg.compare_images)

        stages.append(Stage("bench compare", lambda: {**{k: h for k, h in quantized_inputs().items() if k in neural_names},
                                                      "dataset": ds_id(), "images": cfg.compare_images},
                            lambda: [results_dir() / "compare.json"], compare_run))

    board_hash = file_hash(board.path)
    runs_here = board.build == "make"
    neural = [v for v in variants if v.kind == "neural"]
    for v in variants:
        # the board's first backend that runs this kind of model (as `edgedigit export` chooses)
        backend = default_backend(board, v.kind)
        if backend is None:
            continue
        project = build_dir() / "firmware" / board.id / f"{v.name}-{backend}"

        def export_run(v=v, backend=backend) -> None:
            from .core.errors import ModelTooLargeError

            fw = _import("targets.export", "edgedigit export")
            try:
                fw.export(board.id, variant=v.name, backend=backend)
            except ModelTooLargeError as e:
                raise NotApplicable(str(e)) from None

        stages.append(Stage(f"export {board.id} {v.name} {backend}",
                            lambda v=v: {"model": file_hash(_quantized_outputs(v.name, v.kind)[0]), "board": board_hash},
                            lambda project=project: [project / "edgedigit.lock.json"], export_run))

    if runs_here:
        for v in neural:
            def device_run(v=v) -> None:
                from .measure.bench_device import bench_device

                bench_device(board.id, v.name, samples=cfg.samples, data=cfg.data, progress=True)

            stages.append(Stage(f"bench device {board.id} {v.name}",
                                lambda v=v: {"model": file_hash(_quantized_outputs(v.name, v.kind)[0]),
                                             "board": board_hash, "samples": cfg.samples, "dataset": ds_id()},
                                lambda v=v: [results_dir() / f"device-{board.id}-{v.name}.json"], device_run))

    def report_inputs() -> dict:
        files = sorted(p for p in results_dir().glob("*.json*")) if results_dir().is_dir() else []
        cards = sorted(Path(model_dir(n)) / "card.json" for n in names)
        return {"files": {str(p): sha256_file(p) for p in files + [c for c in cards if c.is_file()]},
                "board": cfg.board}

    def report_run() -> None:
        from .report.document import report

        report(board.id)

    stages.append(Stage("report", report_inputs, lambda: [build_dir() / "reports" / "report.md"], report_run))
    return stages


def run_pipeline(board: str, *, variants: list[str] | None = None, force: bool = False, samples: int = 1000,
                 epochs: int | None = None, seed: int = 0, data: Path | None = None,
                 echo: Callable[[str], None] = print, stress_iterations: int = 1000,
                 bench_runs: int = 200) -> list[StageResult]:
    """Build the stages for ``board`` and run them (see the module docstring)."""
    from .models.data import FALLBACK_WARNING, load_dataset

    cfg = PipelineConfig(board=board, variants=list(variants or []), seed=seed, epochs=epochs, samples=samples,
                         stress_iterations=stress_iterations, bench_runs=bench_runs, data=data)

    def loader() -> Any:
        ds = load_dataset(data)
        echo(f"dataset: {ds.label()} ({ds.source})")
        if ds.fallback:
            echo(f"warning: {FALLBACK_WARNING}")
        return ds

    results = run_stages(build_stages(cfg, loader), force=force, echo=echo)
    ran = sum(r.status == "ran" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    other = len(results) - ran - skipped
    echo(f"pipeline: {ran} ran, {skipped} up to date, {other} not run (missing, not applicable or blocked); report: "
         f"{build_dir() / 'reports' / 'report.md'}")
    return results
