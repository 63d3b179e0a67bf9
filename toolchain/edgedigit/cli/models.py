"""CLI commands: models (registered on ``edgedigit.cli.app``): data, train, quantize, validate."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import DataOpt, JsonOpt, SeedOpt, load_data, make_console, print_json, warn
from .root import Writer, app

VariantsArg = Annotated[
    list[str] | None,
    typer.Argument(help="Variants (default: all registered for train; all trained ones otherwise).",
                   show_default=False),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="A variant knob KEY=VALUE (e.g. width=16, augment=true); repeatable."),
]


class Granularity(StrEnum):
    per_tensor = "per-tensor"
    per_channel = "per-channel"


class Format(StrEnum):
    dynamic = "dynamic"
    float16 = "float16"


@contextlib.contextmanager
def _reporter(enabled: bool = True) -> Iterator[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..models.variants import Reporter

    if not enabled:
        yield Reporter()
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=make_console(stderr=True), transient=False) as progress:
        yield Reporter(progress)


def _parse_knobs(items: list[str] | None) -> dict[str, Any]:
    from ..core.errors import EdgeDigitError

    knobs: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EdgeDigitError(f"--set {item!r}: expected KEY=VALUE")
        low = value.lower()
        parsed: Any = value
        if low in ("true", "false"):
            parsed = low == "true"
        else:
            for cast in (int, float):
                try:
                    parsed = cast(value)
                    break
                except ValueError:
                    continue
        knobs[key] = parsed
    return knobs


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


@app.command()
def data(ctx: typer.Context, data: DataOpt = None, json: JsonOpt = False) -> None:
    """Show which dataset the other commands would use, how it was found, its sizes and its hash."""
    from ..models.data import FALLBACK_WARNING, resolve_source

    source = ctx.get_parameter_source("data")
    from_env = source is not None and source.name == "ENVIRONMENT"
    resolved_how, _ = resolve_source(data)
    ds = load_data(data)
    info = {**ds.describe(), "label": ds.label(),
            "resolved_by": "fallback" if ds.fallback else "EDGEDIGIT_DATA" if from_env else resolved_how}
    if ds.fallback:
        info["warning"] = FALLBACK_WARNING
    if json:
        print_json(info)
        return
    from rich.table import Table

    t = Table(title="dataset", show_header=False)
    for key in ("name", "source", "resolved_by", "train", "test", "sha256"):
        t.add_row(key, f"{info[key]:,}" if isinstance(info[key], int) else str(info[key]))
    make_console().print(t)
    if ds.fallback:
        typer.secho(f"WARNING: {FALLBACK_WARNING}", fg=typer.colors.RED, bold=True)


@app.command(cls=Writer)
def train(
    variants: VariantsArg = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Override every variant's epochs.")] = None,
    seed: SeedOpt = 0,
    data: DataOpt = None,
    knob: SetOpt = None,
    width: Annotated[int | None, typer.Option("--width", min=1, help="Base width (filters) of cnn / tiny.")] = None,
    augment: Annotated[bool | None, typer.Option("--augment/--no-augment",
                                                 help="Random shifts/rotations while training cnn / tiny.")] = None,
    teacher: Annotated[str | None, typer.Option("--teacher", help="Variant tiny distills from (default cnn).")] = None,
    json: JsonOpt = False,
) -> None:
    """Train variants into build/models/<variant>/ (model + card.json); dependencies first."""
    from ..models.train import plan, train_variants

    plan(variants)  # unknown names fail before the data is loaded
    knobs = _parse_knobs(knob)
    knobs.update({k: v for k, v in (("width", width), ("augment", augment), ("teacher", teacher)) if v is not None})
    ds = load_data(data)
    with _reporter(not json) as rep:
        cards = train_variants(variants, ds, seed=seed, epochs=epochs, knobs=knobs, reporter=rep)
    if json:
        print_json(cards)
        return
    from rich.table import Table

    from ..core.store import Card, ModelFolder

    t = Table(title=f"trained (float accuracy on {ds.label()})")
    for col in ("variant", "float accuracy", "params", "MACs", "extras", "seconds", "folder"):
        t.add_column(col)
    for c in map(Card, cards):
        extras = ""
        if "sparsity" in c:
            extras = "zeros " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in c["sparsity"].items())
        elif "pixels" in c:
            extras = f"{len(c['pixels'])} pixels"
        t.add_row(c.variant, _pct(c.float_accuracy), f"{c.params:,}", f"{c.macs:,}", extras,
                  f"{c['train_seconds']:.1f}", str(ModelFolder(c.variant).path))
    make_console().print(t)
    if ds.fallback:
        warn("these figures are NOT MNIST figures (fallback dataset)")


@app.command(cls=Writer)
def quantize(
    variants: VariantsArg = None,
    calibration_samples: Annotated[int, typer.Option("--calibration-samples", min=1,
                                                     help="Training images that calibrate the int8 ranges.")] = 500,
    granularity: Annotated[Granularity, typer.Option(
        "--granularity", help="Dense weights per tensor (runs on every TFLM library) or per channel.")
    ] = Granularity.per_tensor,
    fmt: Annotated[list[Format] | None, typer.Option(
        "--format", help="Also write a dynamic-range or float16 conversion for comparison; repeatable.")] = None,
    seed: SeedOpt = 0,
    data: DataOpt = None,
    json: JsonOpt = False,
) -> None:
    """Quantize trained variants to full int8 (model_int8.tflite) calibrated on training images."""
    from ..models.quantize import quantize_variants, select_trained

    select_trained(variants)  # unknown or untrained variants fail before the data is loaded
    ds = load_data(data)
    formats = ("int8",) + tuple(f.value for f in fmt or [])
    with _reporter(not json) as rep:
        cards = quantize_variants(variants, ds, calibration_samples=calibration_samples, seed=seed,
                                  granularity=granularity.value, formats=formats, reporter=rep)
    if json:
        print_json(cards)
        return
    from rich.table import Table

    from ..core.store import Card

    t = Table(title=f"quantized (accuracy on {ds.label()}, LiteRT reference kernels)")
    for col in ("variant", "float", "int8", "granularity", "input scale / zp", "bytes", "TFLM arena", "others"):
        t.add_column(col)
    for c in map(Card, cards):
        q = c.quantization
        others = ", ".join(f"{k} {_pct(v.get('accuracy'))} ({v['size_bytes']:,} B)"
                           for k, v in (c.get("comparisons") or {}).items())
        scale = f"{q['input_scale']:.6g} / {q['input_zero_point']}" if "input_scale" in q else "-"
        arena = f"{c.tflm_arena_bytes:,}" if c.tflm_arena_bytes else "-"
        t.add_row(c.variant, _pct(c.float_accuracy), _pct(c.int8_accuracy),
                  str(q.get("granularity", "-")), scale, f"{c.size_bytes or 0:,}", arena, others)
    make_console().print(t)
    if ds.fallback:
        warn("these figures are NOT MNIST figures (fallback dataset)")


@app.command(cls=Writer)
def validate(
    variants: VariantsArg = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N test images.")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="Instead: any int8 .tflite, run on --inputs by every "
                                                                "int8 runtime and compared with TFLM.",
                                               dir_okay=False)] = None,
    inputs: Annotated[Path | None, typer.Option("--inputs", help="With --model: a .npy of int8/uint8 inputs in the "
                                                                 "model's input shape.", dir_okay=False)] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="With --model: a .npy of the inputs' class labels.",
                                                dir_okay=False)] = None,
    data: DataOpt = None,
    json: JsonOpt = False,
) -> None:
    """Accuracy of float and int8 models on every host runtime, and how the runtimes agree."""
    from ..measure.validate import select_validatable, validate_variants

    if model is not None or inputs is not None or labels is not None:
        _validate_model(variants, model, inputs, labels, json)
        return

    select_validatable(variants)  # unknown, untrained or unquantized variants fail before the data is loaded
    ds = load_data(data)
    with _reporter(not json) as rep:
        summary = validate_variants(variants, ds, limit=limit, reporter=rep)
    if json:
        print_json(summary)
        return
    _print_validation(summary)
    from ..core.results import VALIDATE, ResultFile

    typer.echo(f"results: {ResultFile(VALIDATE).summary_path}")


def _validate_model(variants: list[str] | None, model: Path | None, inputs: Path | None, labels: Path | None,
                    as_json: bool) -> None:
    from ..core.errors import EdgeDigitError
    from ..measure.validate import validate_model

    if variants:
        raise EdgeDigitError(f"give variants or --model, not both (got {', '.join(variants)} and --model)")
    if model is None or inputs is None:
        raise EdgeDigitError("validate --model FILE needs --inputs X.npy (and optionally --labels y.npy)")
    s = validate_model(model, inputs, labels)
    if as_json:
        print_json(s)
        return
    console = make_console()
    io = s["io"]
    console.print(f"{model}: {s['inputs']['count']:,} inputs of {io['input_bytes']:,} B ({io['input_kind']}), "
                  f"{io['outputs']} outputs; reference {s['reference']}")
    for name, g in s["agreement"].items():
        console.print(f"  {name} vs {g['vs']}: {g['elements_differ']:,} of {g['elements']:,} elements differ "
                      f"(max |diff| {g['max_abs_diff']}), {g['images_with_any_difference']:,} of {g['images']:,} "
                      f"inputs, {g['predictions_differ']:,} predictions")
    for name, why in s["missing"].items():
        console.print(f"  {name}: cannot run it ({why})")
    _print_wheel(console, {model.name: s.get("wheel_arithmetic")})
    if s["accuracy"] is not None:
        console.print("  accuracy: " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in s["accuracy"].items()))
    typer.echo(f"results: {s['results_file']}")


def _print_wheel(console: Any, wheels: dict[str, dict | None]) -> None:
    """Per model with per-tensor FULLY_CONNECTED ops: the host TFLM (the wheel) vs the devices' arithmetic."""
    wheels = {k: w for k, w in wheels.items() if w}
    for name, w in wheels.items():
        d, n = w["device_vs_wheel"], w["native_with_wheel_arithmetic_vs_wheel"]
        console.print(f"  {name}, {len(w['per_tensor_fc_ops'])} per-tensor FULLY_CONNECTED op(s): the devices' TFLM "
                      f"arithmetic vs the wheel's: {d['elements_differ']:,} of {d['elements']:,} elements differ "
                      f"(max |diff| {d['max_abs_diff']}, {d['predictions_differ']:,} predictions); native C with "
                      f"the wheel's arithmetic vs the wheel: {n['elements_differ']:,} differ")
    if wheels:
        console.print(f"  (why they can differ: {next(iter(wheels.values()))['note']})")


def _print_validation(summary: dict) -> None:
    from rich.table import Table

    console = make_console()
    label = summary["label"]
    t = Table(title=f"accuracy on {label}")
    for col in ("variant", "form", "accuracy", "vs float (points)", "predictions != float", "min F1 (class)"):
        t.add_column(col)
    for name, r in summary["variants"].items():
        f1 = r["float"]["per_class"]["f1"]
        t.add_row(name, "float", _pct(r["float"]["accuracy"]), "", "", f"{min(f1):.3f} ({f1.index(min(f1))})")
        for rt, q in r["quantized"].items():
            fvq = r["float_vs_quantized"][rt]
            f1 = q["per_class"]["f1"]
            t.add_row("", rt, _pct(q["accuracy"]), f"{fvq['accuracy_delta_points']:+.2f}",
                      str(fvq["predictions_differ"]), f"{min(f1):.3f} ({f1.index(min(f1))})")
    console.print(t)
    a = Table(title=f"int8 runtime agreement on {label} (reference first)")
    for col in ("variant", "runtime", "vs", "elements differing", "max |diff|", "images differing",
                "predictions differing", "prediction agreement"):
        a.add_column(col)
    for name, r in summary["variants"].items():
        pairs = [(rt, g) for rt, g in r["agreement"].items()]
        pairs += [(key.split(" vs ")[1], g) for key, g in r.get("pairwise", {}).items()]
        for rt, g in pairs:
            a.add_row(name, rt, g["vs"], f"{g['elements_differ']:,} / {g['elements']:,}", str(g["max_abs_diff"]),
                      f"{g['images_with_any_difference']:,} / {g['images']:,}", f"{g['predictions_differ']:,}",
                      f"{100 * g['prediction_agreement']:.2f} %")
    console.print(a)
    _print_wheel(console, {name: r.get("wheel_arithmetic") for name, r in summary["variants"].items()})
    for name, r in summary["variants"].items():
        ref = r["reference"]
        q, f = r["quantized"][ref]["per_class"], r["float"]["per_class"]
        pc = Table(title=f"{name} per class ({ref} int8) on {label}")
        for col in ("class", "precision", "recall", "F1", "F1 float", "support"):
            pc.add_column(col, justify="right")
        conf = r["quantized"][ref]["confusion"]
        for k in range(len(q["f1"])):
            pc.add_row(str(k), f"{q['precision'][k]:.4f}", f"{q['recall'][k]:.4f}", f"{q['f1'][k]:.4f}",
                       f"{f['f1'][k]:.4f}", f"{sum(conf[k]):,}")
        console.print(pc)
        cm = Table(title=f"{name} confusion ({ref} int8): rows true, columns predicted")
        cm.add_column("true")
        for k in range(len(conf)):
            cm.add_column(str(k), justify="right")
        for k, row in enumerate(conf):
            cm.add_row(str(k), *[f"[bold]{v}[/bold]" if j == k else (str(v) if v else ".") for j, v in enumerate(row)])
        console.print(cm)


@app.command()
def select(
    board: Annotated[str, typer.Option("--board", help="Board id or alias (see `edgedigit boards`).")],
    min_accuracy: Annotated[float | None, typer.Option(
        "--min-accuracy", help="Leave out variants below this int8 accuracy: a fraction (0.985) or percent (98.5).")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """The most accurate int8 variant whose flash and RAM fit the board, and why each other one is left out."""
    from ..report.select import parse_min_accuracy, require
    from ..report.select import select as select_variant

    sel = select_variant(board, parse_min_accuracy(min_accuracy))
    if json:
        print_json(sel.as_dict())
    else:
        from rich.table import Table

        b = sel.board
        t = Table(title=f"{b.id}: {b.flash_bytes:,} B flash, {b.ram_bytes:,} B RAM"
                        + (f", int8 accuracy >= {_pct(sel.min_accuracy)}" if sel.min_accuracy is not None else ""))
        for col in ("variant", "int8 accuracy", "backend", "flash (model + runtime)", "RAM (arena + runtime)", "verdict"):
            t.add_column(col)
        for c in sorted(sel.candidates, key=lambda c: -(c.int8_accuracy or 0)):
            r = c.requirement or {}
            flash = f"{r['flash']:,} ({r['model_flash']:,} + {r['runtime_flash']:,})" if r else "-"
            ram = f"{r['ram']:,} ({r['arena']:,} + {r['runtime_ram']:,})" if r else "-"
            verdict = "SELECTED" if c is sel.chosen else c.left_out
            t.add_row(c.variant, _pct(c.int8_accuracy), c.backend or "-", flash, ram, verdict)
        make_console().print(t)
    chosen = require(sel)  # nothing fits: one red line naming every reason, exit 1
    if not json:
        typer.echo(f"selected: {chosen.variant} ({chosen.backend}) for {sel.board.id}")
