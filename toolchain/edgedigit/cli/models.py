"""CLI commands: models (registered on ``edgedigit.cli.app``)."""

from __future__ import annotations
