"""CLI commands: bench (registered on ``edgedigit.cli.app``)."""

from __future__ import annotations
