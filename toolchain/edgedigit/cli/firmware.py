"""CLI commands: firmware (registered on ``edgedigit.cli.app``)."""

from __future__ import annotations
