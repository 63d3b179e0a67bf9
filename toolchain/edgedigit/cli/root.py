"""The typer application objects: ``app`` (``edgedigit``) and ``bench_app`` (``edgedigit bench``).

This module owns the one place where edgedigit's own errors, and a write the file system refuses (a full
disk, a read-only folder, no permission: ``core.errors.WRITE_ERRNOS``), become a single red line on stderr
and exit code 1; any other exception is a bug and keeps its traceback. Command modules register on these
objects; a command that writes into the build folder is registered with ``cls=Writer``, which runs it
holding the build folder's lock (``core.lock``); readers (boards, data, select, ``--help``) take no lock.
"""

from __future__ import annotations

import typer
from typer.core import TyperCommand, TyperGroup

from ..core.errors import EdgeDigitError, write_error_line


class _Group(TyperGroup):
    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except EdgeDigitError as e:
            typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None
        except OSError as e:
            from ..core.paths import build_dir

            line = write_error_line(e, str(build_dir()))
            if line is None:  # not a refused write: a bug, keep the traceback
                raise
            typer.secho(f"error: {line}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.secho("interrupted: everything written so far is kept", err=True, fg=typer.colors.YELLOW)
            raise typer.Exit(130) from None


class Writer(TyperCommand):
    """A command that writes into the build folder: it runs holding the folder's lock (``core.lock``).

    The lock is taken after the options are parsed (``--help`` never waits) and released when the command
    ends; a second writer on the same folder is refused with one line naming the holder's pid and command.
    """

    def invoke(self, ctx):  # type: ignore[override]
        from ..core.lock import build_lock

        with build_lock(_command_line(self, ctx)):
            return super().invoke(ctx)


def _command_line(command: TyperCommand, ctx) -> str:
    """``edgedigit <command> <what was given on the command line>``: what a refused second writer is told."""
    words = ["edgedigit", *ctx.command_path.split()[1:]]
    for param in command.params:
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params.get(param.name)
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if param.param_type_name == "argument":
            words += [str(v) for v in values]
        elif getattr(param, "is_flag", False):
            words.append(param.opts[0] if value else (param.secondary_opts or param.opts)[0])
        else:
            for v in values:
                words += [param.opts[0], str(v)]
    line = " ".join(words)
    return line if len(line) <= 200 else line[:199] + "…"


app = typer.Typer(
    cls=_Group,
    name="edgedigit",
    help="Handwritten digits on microcontrollers: train, quantize to int8, export firmware, measure on the device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
bench_app = typer.Typer(
    cls=_Group,
    help="Measure: on the host (per runtime), under stress, and on a device over serial.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")


def _version_callback(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"edgedigit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Handwritten digits on microcontrollers: train, quantize to int8, export firmware, measure on the device.

    Outputs go to ./build (or $EDGEDIGIT_BUILD). Data: --data PATH, else $EDGEDIGIT_DATA, else the Keras
    cache; offline without MNIST, scikit-learn's digits (announced loudly).
    """
