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
    from ..fsutil import _jsonable

    typer.echo(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable))


def warn(msg: str) -> None:
    typer.secho(f"warning: {msg}", err=True, fg=typer.colors.YELLOW)
