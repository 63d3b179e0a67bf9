"""Options shared by several commands, and small output helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

DataOpt = Annotated[
    Path | None,
    typer.Option("--data", envvar="EDGEDIGIT_DATA", show_envvar=True,
                 help="MNIST as a keras-style .npz or a folder of the four IDX files."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed for everything this command draws.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


def print_json(obj: Any) -> None:
    from ..core.fsutil import jsonable

    typer.echo(json.dumps(obj, indent=2, sort_keys=True, default=jsonable))


def warn(msg: str) -> None:
    typer.secho(f"warning: {msg}", err=True, fg=typer.colors.YELLOW)


def make_console(stderr: bool = False):
    """A rich console on stdout (tables) or stderr (progress, notes when stdout carries JSON)."""
    from rich.console import Console

    return Console(stderr=stderr)


def load_data(data: Path | None):
    """Load the dataset for a command, warning loudly when it is the embedded fallback, not MNIST."""
    from ..models.data import FALLBACK_WARNING, load_dataset

    ds = load_dataset(data)
    if ds.fallback:
        warn(FALLBACK_WARNING)
    return ds
