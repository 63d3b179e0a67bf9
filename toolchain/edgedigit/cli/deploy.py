"""CLI commands: boards, export, build, flash (registered on ``edgedigit.cli.app``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..targets.boards import BACKENDS
from .common import JsonOpt, print_json
from .root import Writer, app

BoardOpt = Annotated[str, typer.Option("--board", "-b", help="Board id or alias (see `edgedigit boards`).")]
VariantOpt = Annotated[str | None, typer.Option(
    "--variant", help="Trained variant to export; default: the most accurate one that fits the board.")]
ModelOpt = Annotated[Path | None, typer.Option(
    "--model", help="Any full-int8 .tflite instead of a trained variant.", exists=False, dir_okay=False)]
BackendOpt = Annotated[str | None, typer.Option(
    "--backend", help=f"{', '.join(BACKENDS)}; default: the board's first backend that can run the model.")]
KernelsOpt = Annotated[str | None, typer.Option(
    "--kernels", help="TFLM kernels on a board that compiles TFLM from a source tree (qemu-m4, host): cmsis-nn, "
                      "reference or esp-nn; default: the tree's first one the board builds (cmsis-nn on Cortex-M).")]
MlperfOpt = Annotated[str | None, typer.Option(
    "--mlperf-id", help="The MLPerf Tiny model id profile% reports (ic01, kws01, vww01, ad01), so the MLPerf Tiny "
                        "runner picks its test; default: derived from the model file's name (the reference "
                        "models'), else the variant.")]


@app.command()
def boards(json_out: JsonOpt = False) -> None:
    """List the boards with their flash/RAM budgets, backends and cycle counters."""
    from rich.console import Console
    from rich.table import Table

    from ..targets.boards import list_boards

    items = list_boards()
    if json_out:
        print_json([b.as_dict() for b in items])
        return
    table = Table(title="boards (boards/<id>.toml)")
    for col in ("id (aliases)", "flash B", "RAM B", "clock", "backends", "counter"):
        table.add_column(col, justify="right" if col in ("clock", "flash B", "RAM B") else "left",
                         no_wrap=col in ("flash B", "RAM B"))
    for b in items:
        clock = f"{b.clock_hz / 1e6:g} MHz" if b.clock_hz else "-"
        name = b.id + (f" ({', '.join(b.aliases)})" if b.aliases else "")
        table.add_row(name, f"{b.flash_bytes:,}", f"{b.ram_bytes:,}", clock, " ".join(b.backends), b.counter.unit)
    Console().print(table)
    typer.echo("flash/RAM: what the application may use; details: edgedigit boards --json or boards/<id>.toml")


def _summary(result) -> dict:
    req = result.requirement
    return {"project": str(result.path), "board": result.board.id, "variant": result.model.name,
            "backend": result.backend, "model_sha256": result.model.sha256, "budget": req.as_dict(),
            "files": sorted(result.files)}


def _print_export(result) -> None:
    req = result.requirement
    b = result.board
    typer.echo(f"exported {result.model.name} ({result.backend}) for {b.id} -> {result.path}")
    typer.echo(f"  flash {req.flash:,} / {b.flash_bytes:,} B ({req.model_flash:,} B model + ~{req.runtime_flash:,} B runtime)")
    io = f" + {req.io_ram:,} B I/O" if req.io_ram else ""
    typer.echo(f"  RAM   {req.ram:,} / {b.ram_bytes:,} B ({req.arena:,} B arena{io} + ~{req.runtime_ram:,} B runtime)")
    d = req.detail
    if "arena_measured" in d:  # an arena measured on the host (tflm): say how the constant was sized
        typer.echo(f"  arena {req.arena:,} B = {d['arena_measured']:,} B measured + {d['arena_margin']:,} B margin")
    typer.echo(f"  {len(result.files)} files + edgedigit.lock.json")


@app.command(cls=Writer)
def export(
    board: BoardOpt,
    variant: VariantOpt = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Project folder; default build/firmware/<board>/<variant>-<backend>/.")] = None,
    kernels: KernelsOpt = None,
    mlperf_id: MlperfOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Export a complete firmware project (PlatformIO or make) for a board, after a flash/RAM budget check."""
    from ..core.errors import EdgeDigitError
    from ..targets.export import export as do_export

    if variant is not None and model is not None:
        raise EdgeDigitError("give --variant or --model, not both")
    result = do_export(board, variant=variant, model=model, backend=backend, out=out, kernels=kernels,
                       mlperf_id=mlperf_id)
    if json_out:
        print_json(_summary(result))
    else:
        _print_export(result)


def _project(board: str, variant: str | None, model: Path | None, backend: str | None, project: Path | None):
    """The board and the project folder to build/flash: given, already exported, or exported now."""
    from ..core.errors import EdgeDigitError
    from ..targets.boards import load_board
    from ..targets.export import LOCK_FILE, default_variant, export, project_dir

    b = load_board(board)
    if project is not None:
        return b, project
    if variant is not None and model is not None:
        raise EdgeDigitError("give --variant or --model, not both")
    name = model.stem if model is not None else (variant or default_variant(b))
    candidates = [backend] if backend is not None else list(b.backends)
    existing = [project_dir(b, name, c) for c in candidates]
    existing = [p for p in existing if (p / LOCK_FILE).is_file()]
    if len(existing) > 1:
        raise EdgeDigitError(f"several exports of {name} for {b.id} ({', '.join(p.name for p in existing)}): pass --backend")
    if existing:
        typer.echo(f"project {existing[0]}")
        return b, existing[0]
    result = export(b.id, variant=None if model is not None else name, model=model, backend=backend)
    _print_export(result)
    return b, result.path


ProjectOpt = Annotated[Path | None, typer.Option(
    "--project", help="An exported project folder; default: the export of --variant/--model (exported if missing).")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Build a project whose files differ from its edgedigit.lock.json anyway (said in the output "
                    "and recorded in build/results/builds.jsonl).")]


class _Warnings(list):
    """Collects (and prints in yellow) what ``--force`` built anyway; ``note()`` is the closing remark."""

    def __call__(self, msg: str) -> None:
        self.append(msg)
        typer.secho(msg, err=True, fg=typer.colors.YELLOW)

    def note(self) -> str:
        from ..core.results import BUILDS, ResultFile

        return (f" (--force: {len(self)} file(s) differ from its edgedigit.lock.json; recorded in "
                f"{ResultFile(BUILDS).jsonl})") if self else ""


@app.command(cls=Writer)
def build(board: BoardOpt, variant: VariantOpt = None, model: ModelOpt = None, backend: BackendOpt = None,
          project: ProjectOpt = None, force: ForceOpt = False) -> None:
    """Build an exported project: `pio run` (or `make` for host/qemu boards), after checking it against its
    edgedigit.lock.json and the tools the board file lists."""
    from ..targets.pio import build as do_build

    b, folder = _project(board, variant, model, backend, project)
    typer.echo(f"building {folder} ...")
    warnings = _Warnings()
    do_build(b, folder, force=force, warn=warnings)
    typer.echo(f"built {folder}{warnings.note()}")


@app.command(cls=Writer)
def flash(
    board: BoardOpt,
    port: Annotated[str | None, typer.Option(
        "--port", help="Serial port of the board; default: the one port with the board's USB id.")] = None,
    variant: VariantOpt = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    project: ProjectOpt = None,
    force: ForceOpt = False,
) -> None:
    """Build and flash an exported project: `pio run -t upload [--upload-port P]`, after checking it against
    its edgedigit.lock.json."""
    from ..targets.pio import flash as do_flash

    b, folder = _project(board, variant, model, backend, project)
    warnings = _Warnings()
    used, _ = do_flash(b, folder, port, force=force, warn=warnings)
    typer.echo(f"flashed {folder} to {b.id} on {used}{warnings.note()}")
