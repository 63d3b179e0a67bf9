"""The study: Optuna samples and records, Ray runs the trials, the driver keeps the two in step.

The driver (the ``edgedigit search`` process) opens the Optuna study (default: SQLite in
``build/search/<board>/study.db``; any SQLAlchemy URL with ``--storage``), asks it for trials, draws each
trial's spec (:func:`.space.suggest`), and hands the spec to a Ray task (:func:`.trial.evaluate`) on a local
Ray started on this machine's cores, or on the cluster at ``--ray-address``. Only the driver talks to the
storage: when a task returns, the driver records its figures on the trial, writes its int8 model under
``build/search/<board>/trials/<n>/``, tells the study (complete, or pruned before training) and appends a line
to ``trials.jsonl``. So a finished trial is in the study the moment it finishes, and killing the search loses
only the trials still running.

Resuming: ``--trials N`` means "until the study holds N finished (complete or pruned) trials", counting
the trials other processes attached to the same storage are running. The driver records a heartbeat for its
running trials (Optuna's RDB heartbeat); at start it fails the running trials of a driver that stopped
beating (killed), and re-enqueues with the same parameters every trial that failed by interruption (Ctrl-C,
``--time-budget``, a killed driver), once. Finished trials are never repeated.

Samplers: NSGA-II for several objectives, TPE for one, seeded with ``--seed`` plus the number of trials
already in the study (a resumed run does not redraw the first run's points). ``--min-accuracy`` is an
Optuna constraint (the front holds only feasible trials); ``--max-latency`` and ``--max-model-bytes`` prune
before training.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.errors import EdgeDigitError, ToolError
from ..core.fsutil import write_atomic, write_json
from ..core.paths import SEARCH_FRONT, search_dir
from ..core.results import append_jsonl, machine
from . import trial as trial_mod

# objective name -> (direction, the figure of a trial it reads)
OBJECTIVES: dict[str, tuple[str, str]] = {"accuracy": ("maximize", "accuracy"), "latency": ("minimize", "instructions"),
                                          "flash": ("minimize", "flash"), "ram": ("minimize", "ram")}
DEFAULT_OBJECTIVES = ("accuracy", "latency", "flash")
NO_LATENCY_OBJECTIVES = ("accuracy", "flash")  # a board the cost model does not cover (cost.not_applicable)
DEFAULT_TRIALS = 20
UNBOUNDED = 10**9  # the trials of a search bounded by --time-budget only
STUDY_DB = "study.db"
FRONT_FILE = SEARCH_FRONT
TRIALS_FILE = "trials.jsonl"
VERIFIED_FILE = "verified.json"
TRIAL_MODEL = "model_int8.tflite"
HEARTBEAT_S = 30.0  # the driver records a heartbeat for each running trial at least this often
GRACE_S = 120.0  # a running trial without a heartbeat for this long belongs to a dead driver
# What a trial records (Optuna user attributes, trials.jsonl and the front), besides its spec.
FIGURES = ("status", "reason", "accuracy", "float_accuracy", "instructions", "flash", "ram", "model_flash", "arena",
           "size_bytes", "backend", "params", "macs", "train_seconds", "trial_seconds", "validation_images",
           "fit_images", "training")


@dataclass
class SearchConfig:
    """What ``edgedigit search`` was asked (see ``edgedigit search --help``)."""

    board: str
    trials: int | None = None  # finished trials to reach; None: DEFAULT_TRIALS, unbounded with a time budget
    time_budget_min: float | None = None
    objectives: tuple[str, ...] | None = None  # None: default_objectives(board)
    min_accuracy: float | None = None
    max_latency: float | None = None
    max_model_bytes: int | None = None  # prune before training above this .tflite size
    seed: int = 0
    storage: str | None = None
    study_name: str | None = None
    ray_address: str | None = None
    parallel: int | None = None  # trials at once; default: the cluster's CPUs / threads
    threads: int = 1  # TensorFlow threads (and Ray CPUs) per trial
    max_epochs: int = 8
    min_epochs: int = 1
    families: tuple[str, ...] = ("conv", "mlp")  # --family: the architecture families searched
    train_limit: int | None = None  # the first N training images only (quick searches)
    calibration_samples: int = 500
    teacher: str | None = "cnn"  # distillation teacher, when trained
    baselines: bool = True  # a new study runs the shipped cnn and tiny architectures first
    verify: bool = True  # run each front model on the emulated Cortex-M4

    def __post_init__(self) -> None:
        if self.trials is not None and self.trials < 1:
            raise EdgeDigitError(f"--trials {self.trials}: need at least 1")
        if not 1 <= self.min_epochs <= self.max_epochs:
            raise EdgeDigitError(f"--min-epochs {self.min_epochs}: expected 1 to --max-epochs ({self.max_epochs})")


@dataclass
class Counts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


@dataclass
class Opened:
    """An opened study and what the driver needs beside it."""

    study: Any
    storage: Any  # the RDBStorage (heartbeats)
    url: str
    name: str
    board: Any
    extra: dict[str, Any] = field(default_factory=dict)


def parse_objectives(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``accuracy,latency,flash`` -> the checked tuple.

    Raises:
        EdgeDigitError: an unknown or repeated objective, or none.
    """
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    bad = [n for n in names if n not in OBJECTIVES]
    if bad or not names or len(set(names)) != len(names):
        shown = text if isinstance(text, str) else ",".join(text)
        raise EdgeDigitError(f"--objectives {shown}: give distinct names from "
                             f"{', '.join(OBJECTIVES)} separated by commas")
    return tuple(names)


def default_objectives(board: Any) -> tuple[str, ...]:
    """:data:`DEFAULT_OBJECTIVES`, or :data:`NO_LATENCY_OBJECTIVES` on a board whose latency the cost model does
    not estimate (:func:`.cost.not_applicable`)."""
    from .cost import not_applicable

    return NO_LATENCY_OBJECTIVES if not_applicable(board) else DEFAULT_OBJECTIVES


def storage_url(board_id: str, storage: str | None) -> str:
    """``--storage`` or the default SQLite file ``build/search/<board>/study.db``."""
    return storage or f"sqlite:///{search_dir(board_id) / STUDY_DB}"


def shown_url(url: str) -> str:
    """The storage URL as recorded and printed (password hidden)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not parseable: the error comes when the study opens
        return url


def default_study_name(board_id: str) -> str:
    return f"edgedigit-{board_id}"


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # the driver records the heartbeats itself (ask-and-tell), which is what this warning is about
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    return optuna


def _rdb_storage(url: str) -> Any:
    optuna = _quiet_optuna()
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=int(HEARTBEAT_S), grace_period=int(GRACE_S),
                                          engine_kwargs={"pool_pre_ping": True})
    except Exception as e:  # noqa: BLE001 - SQLAlchemy's many error types: one line naming the URL
        raise EdgeDigitError(f"--storage {shown_url(url)}: cannot open it ({' '.join(str(e).split())[:200]})") from None


def make_sampler(objectives: tuple[str, ...], seed: int, trials: int) -> Any:
    """NSGA-II for several objectives (population a quarter of the trials, 4 to 20), TPE for one (random for the
    first third of the trials, 2 to 10; a constant liar keeps parallel trials apart).

    ``trials``: the trials the search expects; a search bounded by time only (:data:`UNBOUNDED` trials) is sized
    as one of :data:`DEFAULT_TRIALS`: sized by its bound, its first 20 (NSGA-II) or 10 (TPE) trials would be
    random draws, about all that an hour of full-data trials on two cores completes.
    """
    optuna = _quiet_optuna()
    trials = DEFAULT_TRIALS if trials >= UNBOUNDED else trials
    if len(objectives) == 1:
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, trials // 3)), constant_liar=True)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(20, trials // 4)))


def open_study(cfg: SearchConfig, dataset: Any) -> Opened:
    """Create or load the study of ``cfg`` (checked against what it was created with).

    Raises:
        EdgeDigitError: the storage cannot be opened, or the study exists with other objectives, another
            dataset or another seed (the message names them and how to start a new study).
    """
    from ..targets.boards import load_board

    optuna = _quiet_optuna()
    board = load_board(cfg.board)
    url = storage_url(board.id, cfg.storage)
    storage = _rdb_storage(url)
    name = cfg.study_name or default_study_name(board.id)
    record = {"board": board.id, "objectives": list(cfg.objectives), "seed": cfg.seed,
              "dataset": dataset.describe()["sha256"], "train_limit": cfg.train_limit}
    existing = [s for s in optuna.get_all_study_summaries(storage) if s.study_name == name]
    n_trials = existing[0].n_trials if existing else 0
    directions = [OBJECTIVES[o][0] for o in cfg.objectives]
    if existing:
        stored = existing[0].user_attrs.get("edgedigit", {})
        for key in ("board", "objectives", "seed", "dataset", "train_limit"):
            if key in stored and stored[key] != record[key]:
                raise EdgeDigitError(
                    f"study {name} in {shown_url(url)} was created with {key} {stored[key]!r}, not {record[key]!r}: "
                    f"run with the same settings to continue it, or give a new --study-name")
    sampler = make_sampler(cfg.objectives, cfg.seed + n_trials, cfg.trials or DEFAULT_TRIALS)
    study = optuna.create_study(storage=storage, study_name=name, directions=directions, sampler=sampler,
                                load_if_exists=True)
    if not existing:
        study.set_user_attr("edgedigit", record)
    return Opened(study, storage, url, name, board)


def counts(study: Any) -> Counts:
    """How many trials of the study are in each state (all processes)."""
    from optuna.trial import TrialState

    c = Counts()
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            c.complete += 1
        elif t.state == TrialState.PRUNED:
            c.pruned += 1
        elif t.state == TrialState.FAIL:
            c.failed += 1
        elif t.state == TrialState.RUNNING:
            c.running += 1
        elif t.state == TrialState.WAITING:
            c.waiting += 1
    return c


def retry_interrupted(study: Any) -> list[int]:
    """Fail the trials of dead drivers (stale heartbeat), and re-enqueue every trial that failed by interruption.

    Returns:
        The numbers of the trials enqueued again (each is retried once, with the same parameters).
    """
    optuna = _quiet_optuna()
    from optuna.trial import TrialState

    optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    out = []
    for t in trials:
        if t.state == TrialState.FAIL and "error" not in t.user_attrs and t.number not in retried:
            attrs = {"retry_of": t.number}
            if "spec" in t.user_attrs:
                attrs["spec"] = t.user_attrs["spec"]
            study.enqueue_trial(t.params, user_attrs=attrs)
            out.append(t.number)
    return out


def teacher_payload(name: str | None) -> tuple[str, bytes] | None:
    """``(name, model.keras bytes)`` of a trained teacher with a keras float model, else None."""
    if not name:
        return None
    from ..core.store import ModelFolder

    folder = ModelFolder(name)
    if not folder.is_trained:
        return None
    path = folder.float_path()
    if path.suffix != ".keras" or not path.is_file():
        return None
    return name, path.read_bytes()


def init_ray(address: str | None, threads: int) -> bool:
    """Attach to Ray: the running one of this process, the cluster at ``address``, or a new local one on this
    machine's cores. Returns True when this call started or attached it (the caller shuts it down).

    Raises:
        EdgeDigitError: the cluster at ``address`` cannot be reached.
    """
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    import ray

    if ray.is_initialized():
        return False
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False,
                              "runtime_env": {"env_vars": env}}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise EdgeDigitError(f"--ray-address {address}: cannot attach to Ray ({' '.join(str(e).split())[:200]})") from None
    return True


def _runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _heartbeat(opened: Opened, trial: Any) -> None:
    opened.storage.record_heartbeat(trial._trial_id)  # Optuna's RDB heartbeat (what fail_stale_trials reads)


def record(opened: Opened, cfg: SearchConfig, trial: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Write a finished trial: figures on the trial, its model file, the study's verdict, a line of trials.jsonl."""
    from optuna.trial import TrialState

    folder = search_dir(opened.board.id)
    tflite = result.pop("tflite", None)
    for key in FIGURES:
        if key in result:
            trial.set_user_attr(key, result[key])
    line = {"number": trial.number, "runner": _runner_id(), "time": time.time(), "spec": trial.user_attrs.get("spec"),
            **{k: result.get(k) for k in FIGURES}}
    if result["status"] == trial_mod.PRUNED:
        opened.study.tell(trial, state=TrialState.PRUNED)
        line["state"] = "PRUNED"
    else:
        if tflite is not None:
            write_atomic(folder / "trials" / str(trial.number) / TRIAL_MODEL, tflite)
            write_json(folder / "trials" / str(trial.number) / "spec.json", trial.user_attrs.get("spec"))
        if cfg.min_accuracy is not None:
            trial.set_constraint("min_accuracy", cfg.min_accuracy - result["accuracy"])
        opened.study.tell(trial, [float(result[OBJECTIVES[o][1]]) for o in cfg.objectives])
        line["state"] = "COMPLETE"
    append_jsonl(folder / TRIALS_FILE, line)
    return line


def _fail(opened: Opened, trial: Any, attrs: dict[str, Any]) -> None:
    from optuna.trial import TrialState

    for k, v in attrs.items():
        trial.set_user_attr(k, v)
    opened.study.tell(trial, state=TrialState.FAIL)
    append_jsonl(search_dir(opened.board.id) / TRIALS_FILE, {"number": trial.number, "runner": _runner_id(),
                                                               "time": time.time(), "state": "FAIL", **attrs})


def run_search(cfg: SearchConfig, dataset: Any, *, cost: Any = None, log: Callable[[str], None] | None = None,
               on_result: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
    """Run (or continue) the study of ``cfg`` until it holds ``cfg.trials`` finished trials or time runs out,
    then write and return the front (:func:`front`).

    Args:
        cfg: the search settings.
        dataset: the :class:`edgedigit.models.data.Dataset` (its test set is not read by any trial).
        cost: the latency cost model (:class:`.cost.CostModel`); default: the cached calibration, made if needed.
        log: one line per event (trial finished, pruned, failed).
        on_result: called in the driver after each finished trial is recorded, with its number and figures.

    Raises:
        EdgeDigitError: bad settings, storage or cluster; ToolError: the cost model needs the emulator.
        KeyboardInterrupt: after the running trials were told FAIL (they are retried on the next run).
    """
    from ..targets.boards import load_board
    from .cost import load_or_calibrate, not_applicable
    from .space import baseline_params, for_board, suggest

    say = log or (lambda _msg: None)
    target = load_board(cfg.board)
    no_latency = not_applicable(target)
    if cfg.objectives is None:
        cfg = replace(cfg, objectives=default_objectives(target))
    if no_latency and ("latency" in cfg.objectives or cfg.max_latency is not None):
        raise EdgeDigitError(f"--objectives latency / --max-latency: {no_latency}")
    if no_latency and cfg.verify:
        cfg = replace(cfg, verify=False)  # the front's check runs the models on the emulated Cortex-M4
    if cfg.trials is None:
        cfg = replace(cfg, trials=UNBOUNDED if cfg.time_budget_min else DEFAULT_TRIALS)
    teacher = teacher_payload(cfg.teacher)
    space = for_board(target, families=cfg.families, max_epochs=cfg.max_epochs, min_epochs=cfg.min_epochs,
                      teacher=teacher[0] if teacher else None,
                      per_channel=target.tflm is None or target.tflm.per_channel_fully_connected)
    data = dataset.subset(train=cfg.train_limit) if cfg.train_limit else dataset
    need_cost = "latency" in cfg.objectives or cfg.max_latency is not None
    if cost is None and no_latency:
        say(f"latency not estimated: {no_latency}")
    elif cost is None:
        try:
            cost = load_or_calibrate()
        except ToolError:
            if need_cost:
                raise
            say("no emulator to calibrate the latency cost model: instructions are not estimated")
    opened = open_study(cfg, data)
    study = opened.study
    board = opened.board
    retried = retry_interrupted(study)
    if retried:
        say(f"re-running interrupted trial(s) {', '.join(map(str, retried))} with their parameters")
    if cfg.baselines and not study.get_trials(deepcopy=False):
        for params in baseline_params(space):
            study.enqueue_trial(params, user_attrs={"baseline": True})
    start = time.monotonic()
    deadline = start + 60.0 * cfg.time_budget_min if cfg.time_budget_min else None
    evaluated = 0
    import ray

    started = init_ray(cfg.ray_address, cfg.threads)
    try:
        remote = ray.remote(num_cpus=cfg.threads, max_retries=0)(trial_mod.evaluate)
        data_ref = ray.put(data)
        parallel = cfg.parallel or max(1, int(ray.cluster_resources().get("CPU", 1) // cfg.threads))
        pending: dict[Any, Any] = {}
        try:
            while True:
                if deadline is not None and time.monotonic() >= deadline:
                    say(f"time budget of {cfg.time_budget_min:g} min reached")
                    break
                c = counts(study)
                active = c.running  # includes this driver's pending trials and other processes' running ones
                while len(pending) < parallel and c.finished + active < cfg.trials:
                    t = study.ask()
                    spec = suggest(t, space)
                    t.set_user_attr("spec", spec)
                    t.set_user_attr("runner", _runner_id())
                    _heartbeat(opened, t)
                    ref = remote.remote(spec, board=board.id, dataset=data_ref, seed=cfg.seed,
                                        cost=cost.coefficients if cost is not None else None,
                                        max_latency=cfg.max_latency, max_model_bytes=cfg.max_model_bytes,
                                        calibration_samples=cfg.calibration_samples,
                                        threads=cfg.threads, teacher=teacher if spec["training"].get("teacher") else None)
                    pending[ref] = t
                    active += 1
                if not pending:
                    break
                timeout = HEARTBEAT_S if deadline is None else max(0.1, min(HEARTBEAT_S, deadline - time.monotonic()))
                done, _ = ray.wait(list(pending), num_returns=1, timeout=timeout)
                for t in pending.values():
                    _heartbeat(opened, t)
                for ref in done:
                    t = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as e:
                        msg = " ".join(str(e).split())[-300:]
                        _fail(opened, t, {"error": msg})
                        say(f"trial {t.number} failed: {msg}")
                        continue
                    line = record(opened, cfg, t, result)
                    evaluated += 1
                    say(_line(line))
                    if on_result is not None:
                        on_result(t.number, line)
        finally:
            for ref, t in pending.items():  # interrupted or out of time: retried on the next run
                ray.cancel(ref, force=True)
                _fail(opened, t, {"interrupted": True})
    finally:
        if started:
            ray.shutdown()
    return write_front(opened, cfg, data, cost, evaluated=evaluated, seconds=time.monotonic() - start, log=say)


def _line(line: dict[str, Any]) -> str:
    head = f"trial {line['number']}: {line['state'].lower()}"
    if line["state"] == "PRUNED":
        return f"{head} before training ({line.get('reason')})"
    instr = f"{line['instructions']:,} instr" if line.get("instructions") is not None else "- instr"
    return (f"{head} {100 * line['accuracy']:.2f} % (int8, TFLM, validation), {instr}, {line['flash']:,} B flash, "
            f"{line['ram']:,} B RAM ({line['backend']}) in {line['trial_seconds']:.0f} s")


def front_rows(opened: Opened) -> list[dict[str, Any]]:
    """The study's Pareto front (feasible trials only, Optuna's ``best_trials``), most accurate first."""
    from ..models.zoo import describe

    folder = search_dir(opened.board.id)
    rows = []
    for t in opened.study.best_trials:
        spec = t.user_attrs.get("spec") or {}
        row = {"trial": t.number, **{k: t.user_attrs.get(k) for k in FIGURES if k not in ("status", "reason")},
               "architecture": describe(spec["architecture"]) if spec else None, "spec": spec,
               "values": list(t.values), "model": str(folder / "trials" / str(t.number) / TRIAL_MODEL),
               "baseline": bool(t.user_attrs.get("baseline"))}
        rows.append(row)
    return sorted(rows, key=lambda r: (-(r["accuracy"] or 0), r["instructions"] or 0, r["flash"] or 0, r["trial"]))


def verify(board_id: str, rows: list[dict[str, Any]], images: Any, log: Callable[[str], None]) -> None:
    """Run each front model's native C on the emulated Cortex-M4 and put the measured instructions beside the
    estimate (``instructions_measured``); results are cached by model hash in ``verified.json``."""
    import json
    import shutil

    from ..core.fsutil import sha256_file
    from ..core.graph import load_graph
    from ..core.int8 import quantize_for
    from ..runtimes.native_host import run_qemu_m4

    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        log("no arm-none-eabi-gcc / qemu-system-arm: the front's instructions are estimates only")
        return
    folder = search_dir(board_id)
    path = folder / VERIFIED_FILE
    try:
        cache = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        cache = {}
    for row in rows:
        model = Path(row["model"])
        if not model.is_file():
            continue
        sha = sha256_file(model)
        if sha not in cache:
            try:
                graph = load_graph(model)
                _, measured = run_qemu_m4(model, quantize_for(graph, images), folder / "verify" / str(row["trial"]))
            except EdgeDigitError as e:  # e.g. an op the native backend lacks: say so, keep the estimate
                log(f"trial {row['trial']}: not verified ({e})")
                continue
            cache[sha] = {"instructions": measured, "trial": row["trial"]}
            write_json(path, cache)
        row["instructions_measured"] = cache[sha]["instructions"]
        if row.get("instructions"):
            row["estimate_error"] = round(row["instructions"] / row["instructions_measured"] - 1, 4)


def write_front(opened: Opened, cfg: SearchConfig, data: Any, cost: Any, *, evaluated: int, seconds: float,
                log: Callable[[str], None]) -> dict[str, Any]:
    """The summary of the study: its front (verified when asked), counts and settings; written to
    ``build/search/<board>/pareto.json``."""
    from ..models import zoo

    rows = front_rows(opened)
    if cfg.verify and rows:
        _, _, xv, _ = zoo.split(data.x_train, data.y_train, cfg.seed)
        verify(opened.board.id, rows, xv[:2], log)
    c = counts(opened.study)
    summary = {
        "board": opened.board.id,
        "study": {"name": opened.name, "storage": shown_url(opened.url)},
        "objectives": list(cfg.objectives),
        "directions": [OBJECTIVES[o][0] for o in cfg.objectives],
        "min_accuracy": cfg.min_accuracy,
        "max_latency": cfg.max_latency,
        "max_model_bytes": cfg.max_model_bytes,
        "epochs": [cfg.min_epochs, cfg.max_epochs],
        "seed": cfg.seed,
        "dataset": data.describe(),
        "accuracy_of": "int8 model under TFLM on the validation split held out of the training set (not the test set)",
        "instructions_of": "emulated Cortex-M4 instructions per inference (native backend), estimated by the cost model"
        if cost is not None else None,
        "counts": {"complete": c.complete, "pruned": c.pruned, "failed": c.failed, "running": c.running,
                   "waiting": c.waiting},
        "evaluated_this_run": evaluated,
        "seconds_this_run": round(seconds, 1),
        "cost_model": {"key": cost.key, **{k: cost.as_dict()[k] for k in ("max_relative_error", "mean_relative_error")}}
        if cost is not None else None,
        "machine": machine(),
        "front": rows,
    }
    write_json(search_dir(opened.board.id) / FRONT_FILE, summary)
    return summary
