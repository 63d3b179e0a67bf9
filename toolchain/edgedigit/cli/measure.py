"""CLI commands: ``bench host``, ``bench stress``, ``bench compare`` (on ``bench_app``), ``report`` and
``pipeline`` (on ``app``). Each parses options and calls its stage module."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from ..runtimes import REFERENCE, describe
from .common import DataOpt, JsonOpt, SeedOpt, load_data, make_console, print_json
from .root import Writer, app, bench_app


@bench_app.command("device", cls=Writer)
def bench_device_cmd(
    board: Annotated[str, typer.Option("--board", help="Board id or alias (host and qemu-m4 run here).")],
    variant: Annotated[str, typer.Option("--variant", help="Trained variant to run on the device.")] = "mlp",
    port: Annotated[str | None, typer.Option("--port", help="Serial port or pyserial URL of a real board "
                                                             "(nothing is built or started).")] = None,
    project: Annotated[Path | None, typer.Option("--project", help="An exported project to build and start as it "
                                                                   "is (its lock must name this board and the "
                                                                   "variant's model); default: export one.",
                                                 file_okay=False)] = None,
    samples: Annotated[int, typer.Option("--samples", help="Test images streamed to the device.")] = 200,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run on disk.")] = False,
    backend: Annotated[str, typer.Option("--backend", help="Firmware backend for boards built here.")] = "native",
    model: Annotated[Path | None, typer.Option("--model", help="Any int8 .tflite instead of a trained variant.",
                                               dir_okay=False)] = None,
    inputs: Annotated[Path | None, typer.Option("--inputs", help="With --model: a .npy of int8/uint8 inputs in the "
                                                                 "model's input shape (default: --samples seeded "
                                                                 "random inputs).", dir_okay=False)] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="With --inputs: a .npy of their class labels.",
                                                dir_okay=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Build a project whose files differ from its "
                                                        "edgedigit.lock.json anyway (recorded in the results).")
                     ] = False,
    kernels: Annotated[str | None, typer.Option("--kernels", help="With --backend tflm on qemu-m4/host: the TFLM "
                                                                  "kernels (cmsis-nn, reference, esp-nn); default: "
                                                                  "the board's first.")] = None,
    data: DataOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the model on a device over serial: latency, on-device accuracy, raw outputs vs TFLM.

    Results are appended to build/results/device-<board>-<variant>.jsonl.partial as they arrive and replace
    device-<board>-<variant>.jsonl when the run is complete; --resume continues an interrupted run.
    """
    from ..measure.bench_device import bench_device

    log = (lambda msg: typer.echo(msg, err=True)) if as_json else typer.echo
    summary = bench_device(board, variant, backend=backend, port=port, project=project, samples=samples,
                           resume=resume, data=data, progress=not as_json, log=log, force=force, kernels=kernels,
                           model=model, inputs=inputs, labels=labels)
    if as_json:
        print_json(summary)
        return
    _print_summary(summary)


def _print_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    unit = s["counter_unit"]
    note = f" ({s['counter_note']})" if s["counter_note"] else ""
    console.print(f"[bold]{s['variant']}[/] on [bold]{s['board']}[/] ({s['backend']} backend), model {s['model_sha256'][:16]}…")
    table = Table(title=f"latency over {s['samples']} inferences after warm-up")
    table.add_column("")
    for col in ("median", "p95", "p99", "min", "max"):
        table.add_column(col, justify="right")
    lc, lu = s["latency_counter"], s["latency_us"]
    table.add_row(f"{unit}{note}", *(f"{lc[k]:,.0f}" for k in ("median", "p95", "p99", "min", "max")))
    table.add_row("µs" + (" (emulated time)" if note else ""), *(f"{lu[k]:,.1f}" for k in ("median", "p95", "p99", "min", "max")))
    console.print(table)
    if "counter_per_mac" in s:
        console.print(f"{unit} per MAC: {s['counter_per_mac']:.2f} ({s['macs']:,} MACs per inference){note}")
    d = s["dataset"]
    what = f"{d.get('name', '?')} test set, {d.get('source', '?')}" if isinstance(d, dict) else str(d)
    if s["accuracy"] is not None:
        console.print(f"on-device accuracy: {s['accuracy'] * 100:.2f} % on the first {s['samples']} images of the "
                      f"{what}")
    else:
        console.print(f"inputs: {d.get('source', '?') if isinstance(d, dict) else d} (no labels: no accuracy)")
    console.print(f"model data in flash: CRC-32 {s['model_crc32']} (checked against the host's at the handshake)")
    a = s["agreement"]
    console.print(f"raw outputs identical to TFLM: {a['images_identical']}/{a['images']} images, "
                  f"{a['elements_identical']}/{a['elements']} elements")
    if "size" in s["firmware"]:
        z = s["firmware"]["size"]
        console.print(f"firmware: flash {z['flash']:,} bytes, RAM {z['ram']:,} bytes; heap functions linked: none")
    if s["firmware"].get("lock") == "forced":
        console.print(f"[yellow]firmware built with --force: {len(s['firmware']['changes'])} file(s) differ from "
                      "its edgedigit.lock.json (recorded in the summary under firmware.changes)[/]")
    console.print(f"results: {s['results_file']}")


VariantsArg = Annotated[
    list[str] | None,
    typer.Argument(help="Variants (default: every trained one; stress: the seed's mlp, mlp-pruned, rfe-lr).",
                   show_default=False),
]
RuntimeOpt = Annotated[
    list[str] | None,
    typer.Option("--runtime", help=f"Only these runtimes (repeatable; default: each one but {REFERENCE}, on the "
                                   f"variants of its kind). {describe()}."),
]


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A rich progress on stderr yielding ``update(description, done, total)``; silent when disabled."""
    if not enabled:
        yield lambda *a: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=make_console(stderr=True), transient=False) as progress:

        def update(description: str, done: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = progress.add_task(description, total=total)
            progress.update(tasks[description], completed=done)

        yield update


def _runtimes(values: list[str] | None) -> tuple[str, ...]:
    from ..measure.bench_host import DEFAULT_RUNTIMES

    return tuple(values) if values else DEFAULT_RUNTIMES


@bench_app.command("host", cls=Writer)
def bench_host_cmd(
    variants: VariantsArg = None,
    runtime: RuntimeOpt = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed single-image runs per runtime.")] = 200,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs first.")] = 20,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per batched-throughput call.")] = 100,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Test images for accuracy (default all).")] = None,
    data: DataOpt = None,
    json: JsonOpt = False,
) -> None:
    """Per variant and runtime: accuracy, size, params, MACs, latency, throughput, memory, CPU time.

    Results are appended to build/results/bench-host.jsonl as each runtime finishes.
    """
    from ..measure.bench_host import HostBenchConfig, bench_host

    ds = load_data(data)
    cfg = HostBenchConfig(runs=runs, warmup=warmup, batch=batch, limit=limit, runtimes=_runtimes(runtime))
    console = make_console(stderr=json)

    def show(r: dict) -> None:
        if r["status"] != "ok":
            console.print(f"{r['variant']} {r['runtime']}: [yellow]missing[/] ({r['reason']})")
            return
        lat = r["latency_us"]
        console.print(f"{r['variant']} {r['runtime']}: accuracy {100 * r['accuracy']:.2f} %, median "
                      f"{lat['median']:,.1f} µs (p95 {lat['p95']:,.1f}, p99 {lat['p99']:,.1f}), "
                      f"{r['throughput_ips']:,.0f} img/s")

    summary = bench_host(variants, ds, cfg, on_result=show)
    if json:
        print_json(summary)
        return
    _host_table(summary)


def _host_table(summary: dict) -> None:
    from rich.table import Table

    from ..report.plots import dataset_label

    m = summary["machine"]
    t = Table(title=f"bench host on {m['cpu']} ({m['cores_logical']} cores), {dataset_label(summary['dataset'])}, "
                    f"{summary['settings']['runs']} runs after {summary['settings']['warmup']} warm-up")
    for col in ("variant", "runtime", "accuracy", "median µs", "p95 µs", "p99 µs", "img/s", "peak RSS MB",
                "CPU µs/img"):
        t.add_column(col, justify="left" if col in ("variant", "runtime") else "right")
    for r in summary["results"]:
        if r["status"] != "ok":
            t.add_row(r["variant"], r["runtime"], f"missing: {r['reason']}", *[""] * 6)
            continue
        lat = r["latency_us"]
        t.add_row(r["variant"], r["runtime"], f"{100 * r['accuracy']:.2f} %", f"{lat['median']:,.1f}", f"{lat['p95']:,.1f}",
                  f"{lat['p99']:,.1f}", f"{r['throughput_ips']:,.0f}", f"{r['rss_mb']['peak']:,.0f}",
                  f"{r['cpu_us_per_image']:,.1f}")
    make_console().print(t)


@bench_app.command("stress", cls=Writer)
def bench_stress_cmd(
    variants: VariantsArg = None,
    runtime: RuntimeOpt = None,
    iterations: Annotated[int, typer.Option("--iterations", min=2, help="Timed iterations per runtime.")] = 1000,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Test images per iteration.")] = 100,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed iterations first.")] = 10,
    clock: Annotated[str, typer.Option("--clock", help="Time the verdict's drift uses: cpu (this process's CPU "
                                                       "time; robust on a shared machine) or wall.")] = "cpu",
    board: Annotated[str | None, typer.Option("--board", help="Instead: a long run on this device (bench device), "
                                                              "drift from the device's own counters.")] = None,
    variant: Annotated[str, typer.Option("--variant", help="With --board: the variant on the device.")] = "mlp",
    samples: Annotated[int, typer.Option("--samples", min=2, help="With --board: inferences in the long run.")] = 1000,
    data: DataOpt = None,
    json: JsonOpt = False,
) -> None:
    """The seed's stress test: N iterations of a batch per runtime; drift, memory growth, errors, verdict.

    Stable: |drift| < 5 % (medians of the last 100 vs first 100 iterations), memory growth < 10 MB, no errors.
    """
    if board:
        _device_stress(board, variant, samples, data, json)
        return
    from ..measure.bench_stress import StressConfig, stress

    ds = load_data(data)
    cfg = StressConfig(iterations=iterations, batch=batch, warmup=warmup, runtimes=_runtimes(runtime), clock=clock)
    console = make_console(stderr=json)

    def show(r: dict) -> None:
        if r["status"] != "ok":
            console.print(f"{r['variant']} {r['runtime']}: [yellow]missing[/] ({r['reason']})")
            return
        color = "green" if r["verdict"] == "stable" else "red"
        why = f" ({'; '.join(r['verdict_reasons'])})" if r["verdict_reasons"] else ""
        console.print(f"{r['variant']} {r['runtime']}: [{color}]{r['verdict']}[/]{why}: drift {r['drift_pct']:+.2f} % "
                      f"({r['drift_clock']} time; wall {r['wall_drift_pct']:+.2f} %), "
                      f"growth {r['growth_mb']:+.2f} MB, {r['errors']} errors, wall p50/p95/p99 "
                      f"{r['latency_ms']['median']:.3f}/{r['latency_ms']['p95']:.3f}/{r['latency_ms']['p99']:.3f} ms "
                      f"per {r['batch']}-image batch")

    with _progress(not json) as update:
        summary = stress(variants, ds, cfg, on_result=show, progress=update)
    if json:
        print_json(summary)


def _device_stress(board: str, variant: str, samples: int, data: Path | None, as_json: bool) -> None:
    from ..core.results import ResultFile, device_name
    from ..measure.bench_device import bench_device
    from ..measure.bench_stress import STRESS_DEVICE
    from ..report.document import device_summary
    from ..targets.boards import load_board

    b = load_board(board)
    log = (lambda msg: typer.echo(msg, err=True)) if as_json else typer.echo
    bench_device(b.id, variant, samples=samples, data=data, progress=not as_json, log=log)
    recs = ResultFile(device_name(b.id, variant)).records()
    session = [r for r in recs if r.get("type") == "session"][-1]
    d = device_summary(session, [r for r in recs if r.get("type") == "sample"])
    rec = {"kind": "stress-device", "board": b.id, "variant": variant, "samples": d["samples"],
           "counter_unit": d["counter_unit"], "counter_note": d["counter_note"], "dataset": d["dataset"],
           **d.get("drift", {})}
    ResultFile(STRESS_DEVICE).append(rec)
    if as_json:
        print_json(rec)
        return
    note = f" ({d['counter_note']})" if d["counter_note"] else ""
    typer.echo(f"{variant} on {b.id}: {rec['verdict']} — counter drift {rec['drift_pct']:+.2f} % over {d['samples']} "
               f"inferences (last {rec['drift_window']} vs first {rec['drift_window']}), median "
               f"{rec['median']:,.0f} {d['counter_unit']}{note}")


@bench_app.command("compare", cls=Writer)
def bench_compare_cmd(
    variants: VariantsArg = None,
    board: Annotated[str | None, typer.Option("--board", help="Instead: native vs TFLM+CMSIS-NN vs TFLM reference "
                                                              "firmwares on this emulated board (qemu-m4).")] = None,
    model: Annotated[list[Path] | None, typer.Option("--model", help="With --board: also any int8 .tflite "
                                                                    "(repeatable).", dir_okay=False)] = None,
    images: Annotated[int | None, typer.Option("--images", min=1, help="Test images run on every side (default 10; "
                                                                       "with --board 100).")] = None,
    data: DataOpt = None,
    json: JsonOpt = False,
) -> None:
    """Native C vs TFLM on the same model: instructions per inference, RAM, flash.

    Without --board: callgrind on this host. With --board qemu-m4: the three firmwares on the emulated
    Cortex-M4, written to build/results/compare-<board>.json.
    """
    if board is not None:
        _compare_board(board, variants, model, images or 100, data, json)
        return
    if model:
        from ..core.errors import EdgeDigitError

        raise EdgeDigitError("--model needs --board (the host comparison runs trained variants)")
    from ..measure.bench_compare import compare

    ds = load_data(data)
    console = make_console(stderr=json)
    console.print("running both sides under valgrind callgrind (about a minute per variant)...")
    summary = compare(variants, ds, images=images or 10)
    if json:
        print_json(summary)
        return
    for r in summary["results"]:
        i, ram, fl = r["instructions"], r["ram"], r["flash"]
        console.print(f"[bold]{r['variant']}[/] ({r['images']} images, outputs identical: "
                      f"{'yes' if r['outputs_mismatch'] == 0 else 'NO, ' + str(r['outputs_mismatch']) + ' elements differ'})")
        console.print(f"  instructions / inference: native {i['native']:,} (-O2) vs TFLM {i['tflm']:,} -> "
                      f"ratio {i['ratio']:.3f}x (goal <= 0.5x); native -O3 {i['native_O3']:,} -> {i['ratio_O3']:.3f}x")
        console.print(f"  RAM: native plan {ram['native_plan']:,} B, liveness lower bound {ram['lower_bound']:,} B "
                      f"-> {ram['ratio_to_lower_bound']:.3f}x (goal <= 1.1x); TFLM arena {ram['tflm_arena']:,} B "
                      f"-> native/TFLM {ram['ratio_to_tflm']:.3f}x")
        console.print(f"  flash: native {fl['native']:,} B vs TFLM {fl['tflm']:,} B (model {fl['tflm_model_bytes']:,} + "
                      f"library estimate {fl['tflm_library_estimate']:,}) -> {fl['ratio']:.3f}x")
    for k, v in summary["method"].items():
        console.print(f"[dim]{k}: {v}[/]")


def _compare_board(board: str, variants: list[str] | None, models: list[Path] | None, images: int,
                   data: Path | None, as_json: bool) -> None:
    from rich.table import Table

    from ..measure.bench_compare import BOARD_FIRMWARES, compare_on_board

    ds = load_data(data)
    console = make_console(stderr=as_json)
    with _progress(not as_json) as update:
        summary = compare_on_board(board, variants, models, ds, images=images, progress=update,
                                   log=lambda m: console.print(f"[dim]{m}[/]"))
    if as_json:
        print_json(summary)
        return
    keys = [k for k, _, _ in BOARD_FIRMWARES]
    t = Table(title=f"bench compare on {summary['board']}: {summary['images']} test images per firmware "
                    f"({summary['counter_note']})")
    for col in ("model", "firmware", "instructions", "per MAC", "flash B", "RAM B", "stack B", "outputs = TFLM"):
        t.add_column(col, justify="left" if col in ("model", "firmware") else "right")
    for r in summary["results"]:
        for k in keys:
            if k not in r["instructions"]:
                t.add_row(r["variant"], k, f"missing: {r['missing'].get(k, '?')}", *[""] * 5)
                continue
            per_mac = f"{r['instructions_per_mac'][k]:.2f}" if r["instructions_per_mac"] else "-"
            e = f"{r['elements_identical'][k]:,}/{r['elements']:,}"
            t.add_row(r["variant"], k, f"{r['instructions'][k]:,}", per_mac, f"{r['flash'][k]:,}", f"{r['ram'][k]:,}",
                      f"{r['ram_detail'][k]['stack_used']:,}", ("yes " if r["outputs_identical"][k] else "NO ") + e)
    make_console().print(t)
    for k, v in summary["method"].items():
        console.print(f"[dim]{k}: {v}[/]")


@app.command(cls=Writer)
def report(
    board: Annotated[str | None, typer.Option("--board", help="Board whose recommended model gets the "
                                                               "confusion matrix (default: the first board).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for report.md and plots "
                                                           "(default build/reports).")] = None,
) -> None:
    """Write build/reports/report.md with the comparison table, recommendations and plots."""
    from ..report.document import report as write

    path = write(board, out)
    typer.echo(f"report: {path}")


@app.command(cls=Writer)
def pipeline(
    board: Annotated[str, typer.Option("--board", help="Target board (host and qemu-m4 are benchmarked here).")],
    variants: Annotated[list[str] | None, typer.Option("--variant", help="Variants (repeatable; default: all "
                                                                         "registered).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-run every stage even when up to date.")] = False,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Test images streamed to the device.")] = 1000,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Override every variant's epochs.")] = None,
    stress_iterations: Annotated[int, typer.Option("--stress-iterations", min=2,
                                                   help="Stress-test iterations per runtime.")] = 1000,
    bench_runs: Annotated[int, typer.Option("--bench-runs", min=1, help="Timed single-image runs per runtime "
                                                                         "in bench host.")] = 200,
    seed: SeedOpt = 0,
    data: DataOpt = None,
) -> None:
    """train -> quantize -> validate -> bench host -> stress -> export -> (device bench on host/qemu-m4) -> report.

    Each stage is skipped when its outputs are up to date with its inputs (hash stamps in build/stamps).
    """
    from ..pipeline import run_pipeline

    run_pipeline(board, variants=variants, force=force, samples=samples, epochs=epochs, seed=seed, data=data,
                 echo=typer.echo, stress_iterations=stress_iterations, bench_runs=bench_runs)
