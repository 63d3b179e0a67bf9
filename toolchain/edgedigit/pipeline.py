"""``edgedigit pipeline --board B``: every stage in order, each skipped when it is up to date.

Stages: train -> quantize (per variant) -> validate -> bench host -> stress (the seed's variants) ->
bench compare (native vs TFLM, neural variants) -> export -> device bench (per neural variant, on boards
that run here: ``host``, ``qemu-m4``) -> report.

Up to date means: the stage's stamp file (``build/stamps/<stage>.json``) records the same inputs (sha256
of the input files and the settings that shape the output), every output file still has the sha256
recorded when the stage last ran, and the stage does not find its outputs incomplete (``Stage.incomplete``:
e.g. a device results file holding fewer samples than its summary counts). Hashes, not modification times:
a file rewritten with the same bytes does not re-run anything, an edited one does. Stamps name files
relative to the build folder, so a copied or moved build folder is as up to date as the original.
``--force`` re-runs every stage.

Each stage is declared by its own module (``models.train.stage``, ``models.quantize.stage``,
``measure.validate.stage``, ...: inputs, outputs, run); this module only orders them and keeps the stamps.

One line per stage: ``ran``, ``skipped (up to date)``, ``missing part (...)`` when something it needs is
not installed here, ``not applicable (...)`` (e.g. the model does not fit the board), or ``blocked (...)``
when an input an earlier stage should have made is absent.
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
from .core.paths import build_dir
from .core.stage import Blocked, MissingPart, NotApplicable, Stage, file_hash, relative

__all__ = ["Blocked", "MissingPart", "NotApplicable", "PipelineConfig", "Stage", "StageResult", "build_stages",
           "file_hash", "run_pipeline", "run_stages", "up_to_date"]


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


def _output_hashes(paths: Iterable[Path]) -> dict[str, str] | None:
    """sha256 of each output by its name relative to the build folder; None when one is missing."""
    out = {}
    for p in paths:
        if not Path(p).is_file():
            return None
        out[relative(p)] = sha256_file(p)
    return out


def up_to_date(stage: Stage, inputs: dict[str, Any]) -> bool:
    """True when the stage's stamp records ``inputs``, every output still has its recorded hash, and the
    stage finds its outputs complete."""
    stamp = stamps_dir() / f"{_slug(stage.name)}.json"
    if not stamp.is_file():
        return False
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or recorded.get("inputs") != json.loads(json.dumps(inputs, sort_keys=True,
                                                                                         default=str)):
        return False
    outs = _output_hashes(stage.outputs())
    return outs is not None and outs == recorded.get("outputs") and stage.incomplete() is None


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
                stamp = stamps_dir() / f"{_slug(stage.name)}.json"
                stamp.unlink(missing_ok=True)  # a run that fails or is killed leaves no stamp behind
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
                    why = stage.incomplete()
                    if why is not None:
                        raise EdgeDigitError(f"pipeline stage '{stage.name}' ran but its outputs are incomplete: {why}")
                    write_json(stamp, {"stage": stage.name, "edgedigit": __version__, "inputs": inputs, "outputs": outs})
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


def build_stages(cfg: PipelineConfig, dataset_loader: Callable[[], Any]) -> list[Stage]:
    """The stages for ``cfg`` in order, each declared by its stage module.

    ``dataset_loader`` is called once, when a stage first needs data.
    """
    from .measure import bench_compare, bench_device, bench_host, bench_stress, validate
    from .models import quantize, train
    from .models.variants import SEED_VARIANTS, get_variant
    from .report import document
    from .targets import export
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

    stages: list[Stage | None] = []
    stages += [train.stage(v, cfg.seed, cfg.epochs, ds) for v in variants]
    stages += [quantize.stage(v, cfg.seed, cfg.calibration_samples, ds) for v in variants]
    stages += [validate.stage(variants, ds), bench_host.stage(variants, ds, cfg.bench_runs),
               bench_stress.stage(variants, ds, cfg.stress_iterations),
               bench_compare.stage(variants, ds, cfg.compare_images)]
    exports = {v.name: export.stage(board, v) for v in variants}
    stages += list(exports.values())
    if board.build == "make":  # boards that build and run here: the device bench on the exported project
        for v in variants:
            exported = exports[v.name]
            if exported is not None and bench_device.runs_on_device(v):
                project = exported.outputs()[0].parent  # the folder of the project's lock file
                stages.append(bench_device.stage(board, v, project, cfg.samples, cfg.data, ds))
    stages.append(document.stage(board.id, variants))
    return [s for s in stages if s is not None]


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
