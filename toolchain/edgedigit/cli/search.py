"""CLI commands: search (registered on ``edgedigit.cli.app``): ``edgedigit search`` and ``edgedigit search promote``."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import DataOpt, JsonOpt, SeedOpt, load_data, make_console, print_json, warn
from .root import _Group, app

search_app = typer.Typer(
    cls=_Group,
    invoke_without_command=True,
    help="Architecture search under a board's budget (Optuna + Ray); `search promote TRIAL` makes a finalist a variant.",
)
app.add_typer(search_app, name="search")

BoardOpt = Annotated[str | None, typer.Option("--board", help="Board id or alias (see `edgedigit boards`).")]
StorageOpt = Annotated[str | None, typer.Option(
    "--storage", help="Optuna storage (any SQLAlchemy URL); default sqlite:///build/search/<board>/study.db.")]
StudyOpt = Annotated[str | None, typer.Option("--study-name", help="Study name; default edgedigit-<board>.")]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _print_front(summary: dict) -> None:
    from rich.table import Table

    c = summary["counts"]
    t = Table(title=f"{summary['board']}: Pareto front of {summary['study']['name']} ({c['complete']} complete, "
                    f"{c['pruned']} pruned before training, {c['failed']} failed; objectives "
                    f"{', '.join(summary['objectives'])})")
    for col in ("trial", "accuracy (int8, TFLM, val.)", "instructions (est.)", "instructions (run)", "flash",
                "RAM", "backend", "model bytes", "architecture"):
        t.add_column(col)
    for r in summary["front"]:
        t.add_row(str(r["trial"]) + (" (baseline)" if r.get("baseline") else ""), _pct(r["accuracy"]),
                  _num(r["instructions"]), _num(r.get("instructions_measured")), _num(r["flash"]), _num(r["ram"]),
                  r["backend"] or "-", _num(r["size_bytes"]), r["architecture"] or "-")
    make_console().print(t)


@search_app.callback()
def search(
    ctx: typer.Context,
    board: BoardOpt = None,
    trials: Annotated[int | None, typer.Option(
        "--trials", min=1, help="Run until the study holds N finished trials (default 20; no limit with --time-budget).")
    ] = None,
    time_budget: Annotated[float | None, typer.Option(
        "--time-budget", min=0.1, metavar="MINUTES",
        help="Stop after this many minutes (running trials are retried next time).")] = None,
    min_accuracy: Annotated[float | None, typer.Option(
        "--min-accuracy", help="Constraint: validation int8 accuracy at least this (fraction 0.99 or percent 99).")] = None,
    max_latency: Annotated[float | None, typer.Option(
        "--max-latency", help="Prune before training above this many estimated emulated Cortex-M4 instructions.")] = None,
    max_model_bytes: Annotated[int | None, typer.Option(
        "--max-model-bytes", min=1, help="Prune before training the models whose int8 .tflite is larger (e.g. 16384).")
    ] = None,
    objectives: Annotated[str | None, typer.Option(
        "--objectives", help="Comma-separated: accuracy, latency, flash, ram (default accuracy,latency,flash; "
                             "accuracy,flash on an AVR board, whose latency the Cortex-M4 cost model does not estimate).")
                          ] = None,
    seed: SeedOpt = 0,
    storage: StorageOpt = None,
    study_name: StudyOpt = None,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="Run the trials on this Ray cluster (e.g. HEAD_IP:6379, or auto); default: a local Ray.")
    ] = None,
    parallel: Annotated[int | None, typer.Option("--parallel", min=1, help="Trials at once (default: CPUs / threads).")
                        ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="TensorFlow threads per trial.")] = 1,
    max_epochs: Annotated[int, typer.Option("--max-epochs", min=1, help="Upper bound of the epochs knob.")] = 8,
    min_epochs: Annotated[int, typer.Option("--min-epochs", min=1,
                                            help="Lower bound of the epochs knob (at most --max-epochs).")] = 1,
    family: Annotated[str, typer.Option(
        "--family", help="Architecture families to search, comma-separated: conv, mlp (default both; the Uno runs "
                         "mlp only).")] = "conv,mlp",
    train_limit: Annotated[int | None, typer.Option("--train-limit", min=10,
                                                    help="Search on the first N training images only.")] = None,
    teacher: Annotated[str, typer.Option("--teacher", help="Distillation teacher, when trained ('' for none).")] = "cnn",
    baselines: Annotated[bool, typer.Option("--baselines/--no-baselines",
                                            help="A new study runs the shipped cnn and tiny first.")] = True,
    verify: Annotated[bool, typer.Option("--verify/--no-verify",
                                         help="Run the front's models on the emulated Cortex-M4.")] = True,
    promote_n: Annotated[int | None, typer.Option("--promote", min=1,
                                                  help="Then promote the N most accurate models of the front.")] = None,
    data: DataOpt = None,
    json: JsonOpt = False,
) -> None:
    """Search architectures for a board: every trial trained, quantized to int8 and measured as on the device.

    Prints the Pareto front (accuracy, instructions, flash, RAM) and writes it to build/search/<board>/pareto.json.
    Interrupt it at any time: running it again continues the study.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..core.errors import EdgeDigitError
    from ..report.select import parse_min_accuracy
    from ..search.runner import SearchConfig, parse_objectives, run_search
    from ..search.space import parse_families

    if board is None:
        raise EdgeDigitError("edgedigit search needs --board (see `edgedigit boards`)")
    cfg = SearchConfig(board=board, trials=trials, time_budget_min=time_budget,
                       objectives=parse_objectives(objectives) if objectives is not None else None,
                       min_accuracy=parse_min_accuracy(min_accuracy),
                       max_latency=max_latency, max_model_bytes=max_model_bytes, seed=seed, storage=storage,
                       study_name=study_name,
                       ray_address=ray_address, parallel=parallel, threads=threads, max_epochs=max_epochs,
                       min_epochs=min_epochs, families=parse_families(family), train_limit=train_limit,
                       teacher=teacher or None, baselines=baselines, verify=verify)
    ds = load_data(data)
    console = make_console(stderr=True)
    summary = run_search(cfg, ds, log=console.log)
    if promote_n:
        from ..search.promote import promote as promote_trial

        summary["promoted"] = [promote_trial(board, r["trial"], ds, storage=storage, study_name=study_name, seed=seed,
                                             log=console.log)["variant"] for r in summary["front"][:promote_n]]
    if json:
        print_json(summary)
        return
    _print_front(summary)
    from ..core.paths import search_dir

    typer.echo(f"front: {search_dir(summary['board']) / 'pareto.json'}; study: {summary['study']['storage']} "
               f"(optuna-dashboard {summary['study']['storage']})")
    for name in summary.get("promoted", []):
        typer.echo(f"promoted: {name}")
    if ds.fallback:
        warn("these figures are NOT MNIST figures (fallback dataset)")


@search_app.command()
def promote(
    trial: Annotated[int, typer.Argument(help="The trial's number in the study (see the front).")],
    board: BoardOpt = None,
    storage: StorageOpt = None,
    study_name: StudyOpt = None,
    seed: SeedOpt = 0,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Train with this many seeds (seed, seed+1, ...).")] = 3,
    verify: Annotated[bool, typer.Option("--verify/--no-verify",
                                         help="Run the model on the emulated Cortex-M4 and record its instructions.")] = True,
    data: DataOpt = None,
    json: JsonOpt = False,
) -> None:
    """Make trial TRIAL a variant search-<board>-<TRIAL>: retrained with three seeds, quantized, its card written."""
    from ..core.errors import EdgeDigitError
    from ..search.promote import load_trial
    from ..search.promote import promote as promote_trial

    if board is None:
        raise EdgeDigitError("edgedigit search promote needs --board (see `edgedigit boards`)")
    load_trial(board, trial, storage, study_name)  # no such study or trial: fail before the data is loaded
    ds = load_data(data)
    card = promote_trial(board, trial, ds, storage=storage, study_name=study_name, seed=seed, seeds=seeds,
                         verify=verify, log=make_console(stderr=True).log)
    if json:
        print_json(card)
        return
    s = card["seeds"]
    typer.echo(f"promoted: {card['variant']} ({card['architecture']}): int8 test accuracy mean "
               f"{_pct(s['int8_accuracy_mean'])}, min {_pct(s['int8_accuracy_min'])} over seeds "
               f"{', '.join(map(str, s['seeds']))}; {card['size_bytes']:,} B model")
    measured = card.get("search", {}).get("instructions_measured")
    if measured is not None:
        typer.echo(f"emulated Cortex-M4: {measured:,.0f} instructions per inference")
    if ds.fallback:
        warn("these figures are NOT MNIST figures (fallback dataset)")
