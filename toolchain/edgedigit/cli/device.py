"""CLI commands: device (registered on ``edgedigit.cli.app``): ``edgedigit bench device``."""

from __future__ import annotations

from typing import Annotated

import typer

from . import bench_app
from .common import DataOpt, JsonOpt, print_json


@bench_app.command("device")
def bench_device_cmd(
    board: Annotated[str, typer.Option("--board", help="Board id or alias (host and qemu-m4 run here).")],
    variant: Annotated[str, typer.Option("--variant", help="Trained variant to run on the device.")] = "mlp",
    port: Annotated[str | None, typer.Option("--port", help="Serial port or pyserial URL of a real board "
                                                             "(nothing is built or started).")] = None,
    samples: Annotated[int, typer.Option("--samples", help="Test images streamed to the device.")] = 200,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the results file on disk.")] = False,
    backend: Annotated[str, typer.Option("--backend", help="Firmware backend for boards built here.")] = "native",
    data: DataOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the model on a device over serial: latency, on-device accuracy, raw outputs vs TFLM.

    Results are appended to build/results/device-<board>-<variant>.jsonl as they arrive; --resume continues.
    """
    from ..bench.device import bench_device

    log = (lambda msg: typer.echo(msg, err=True)) if as_json else typer.echo
    summary = bench_device(board, variant, backend=backend, port=port, samples=samples, resume=resume, data=data,
                           progress=not as_json, log=log)
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
    console.print(f"on-device accuracy: {s['accuracy'] * 100:.2f} % on the first {s['samples']} images of the {what}")
    a = s["agreement"]
    console.print(f"raw outputs identical to TFLM: {a['images_identical']}/{a['images']} images, "
                  f"{a['elements_identical']}/{a['elements']} elements")
    if "size" in s["firmware"]:
        z = s["firmware"]["size"]
        console.print(f"firmware: flash {z['flash']:,} bytes, RAM {z['ram']:,} bytes; heap functions linked: none")
    console.print(f"results: {s['results_file']}")
