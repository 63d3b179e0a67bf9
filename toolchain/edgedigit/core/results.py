"""The results store: ``build/results/<name>.jsonl`` (records as they arrive) and ``<name>.json`` (summary).

Every stage that measures something appends each record to its JSONL file the moment it exists (flushed and
fsynced, so a killed run keeps what it measured) and writes its summary atomically at the end. Every
record and summary carries the same :func:`machine` description of the host that measured it.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fsutil import jsonable, write_json
from .paths import results_dir

# Result names: build/results/<name>.jsonl and <name>.json
VALIDATE = "validate"
BENCH_HOST = "bench-host"
STRESS = "stress"
COMPARE = "compare"


DEVICE_PREFIX = "device-"
MODEL_VALIDATE_PREFIX = "validate-model-"


def model_validate_name(stem: str) -> str:
    """``validate-model-<stem>``: ``validate --model FILE`` of any int8 model, one file pair per model name."""
    return f"{MODEL_VALIDATE_PREFIX}{stem}"


def device_name(board_id: str, variant: str) -> str:
    """``device-<board>-<variant>``: one file pair per board and variant run by ``bench device``."""
    return f"{DEVICE_PREFIX}{board_id}-{variant}"


def machine() -> dict[str, Any]:
    """The host the figures were measured on: CPU model, cores, OS, Python, and its load at that moment."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:  # psutil is a dependency; stay usable without it
        physical = None
    return {
        "cpu": cpu,
        "machine": platform.machine(),
        "cores_logical": os.cpu_count(),
        "cores_physical": physical,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "hostname": platform.node(),
        "loadavg_1min": round(os.getloadavg()[0], 2),  # other work on the machine while this was measured
    }


@dataclass(frozen=True)
class ResultFile:
    """One named result: ``<name>.jsonl`` (append-only records) and ``<name>.json`` (the summary)."""

    name: str

    @property
    def jsonl(self) -> Path:
        return results_dir() / f"{self.name}.jsonl"

    @property
    def summary_path(self) -> Path:
        return results_dir() / f"{self.name}.json"

    def append(self, record: dict[str, Any]) -> None:
        """Append one record as a JSON line, flushed and fsynced before returning."""
        append_jsonl(self.jsonl, record)

    def records(self) -> list[dict[str, Any]]:
        """Every complete record (a torn last line from a killed run is ignored)."""
        return read_jsonl(self.jsonl)

    def latest(self, *keys: str) -> list[dict[str, Any]]:
        """The last record for each distinct value of ``keys`` (e.g. ``latest("variant")``), in first-seen order."""
        out: dict[tuple[Any, ...], dict[str, Any]] = {}
        for rec in self.records():
            out[tuple(rec.get(k) for k in keys)] = rec
        return list(out.values())

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write ``<name>.json`` atomically; returns its path."""
        write_json(self.summary_path, summary)
        return self.summary_path

    def summary(self) -> dict[str, Any] | None:
        """The summary on disk, or None when there is none (or it is unreadable)."""
        try:
            return json.loads(self.summary_path.read_text())
        except (OSError, ValueError):
            return None


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON object as a line to ``path``, flushed and fsynced at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True, default=jsonable) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of ``path`` (a torn last line, from a killed run, is ignored)."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out
