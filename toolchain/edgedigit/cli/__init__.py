"""The ``edgedigit`` command line: thin typer commands over the stage modules.

Commands live in one module per area (``models``: data to select, ``deploy``: boards, export, build,
flash, ``measure``: bench, report, pipeline); each only parses options and calls a stage. ``root`` holds the
typer objects and the one place where edgedigit's own errors become a single red line on stderr and exit
code 1; any other exception is a bug and keeps its traceback.
Stage modules (and TensorFlow) are imported inside the commands so ``edgedigit --help`` answers at once.
"""

from __future__ import annotations

from .root import app


def main() -> None:
    """Console-script entry point."""
    app()


# Register the commands of each area (each module only imports typer at the top).
# Import order = order in --help: the pipeline from data to report.
from . import models, deploy, measure, search  # noqa: E402,F401,I001
