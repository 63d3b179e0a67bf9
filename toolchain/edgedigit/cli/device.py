"""CLI commands: device (registered on ``edgedigit.cli.app``)."""

from __future__ import annotations
