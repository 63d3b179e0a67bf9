"""The typer application objects: ``app`` (``edgedigit``) and ``bench_app`` (``edgedigit bench``).

This module owns the one place where edgedigit's own errors become a single red line on stderr and exit
code 1; any other exception is a bug and keeps its traceback. Command modules register on these objects.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from ..core.errors import EdgeDigitError


class _Group(TyperGroup):
    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except EdgeDigitError as e:
            typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.secho("interrupted: everything written so far is kept", err=True, fg=typer.colors.YELLOW)
            raise typer.Exit(130) from None


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
