"""The results store: ``build/results/<name>.jsonl`` (records as they arrive) and ``<name>.json`` (summary).

Every stage that measures something appends each record to its JSONL file the moment it exists (flushed and
fsynced, so a killed run keeps what it measured) and writes its summary atomically at the end. Every
record and summary carries the same :func:`machine` description of the host that measured it.

A result measured as one session of N samples (``bench device``) is never written over a complete earlier
one while it runs: the session goes to ``<name>.jsonl.partial`` beside it (:meth:`ResultFile.start_session`,
:meth:`ResultFile.continue_session`) and replaces ``<name>.jsonl`` only when it is complete
(:meth:`ResultFile.finish_session`), so an interrupted run leaves the earlier complete result and a
resumable partial one. :meth:`ResultFile.incomplete` says when a summary and its records disagree.

``validate.jsonl`` keeps one record per (variant, model, dataset): :meth:`ResultFile.upsert` replaces the
record of a re-run instead of appending a duplicate.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fsutil import jsonable, write_atomic, write_json
from .paths import results_dir

# Result names: build/results/<name>.jsonl and <name>.json
VALIDATE = "validate"
BENCH_HOST = "bench-host"
STRESS = "stress"
COMPARE = "compare"
BUILDS = "builds"  # one record per `edgedigit build` / `flash`: the project, its lock verified or forced


DEVICE_PREFIX = "device-"
COMPARE_BOARD_PREFIX = "compare-"


def compare_board_name(board_id: str) -> str:
    """``compare-<board>``: native vs TFLM firmwares on one emulated board (``bench compare --board``)."""
    return f"{COMPARE_BOARD_PREFIX}{board_id}"


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
            data = json.loads(self.summary_path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def upsert(self, record: dict[str, Any], key: Callable[[dict[str, Any]], Any]) -> None:
        """Append ``record``, dropping an earlier record with the same ``key(record)`` (a re-run of it).

        The file is rewritten atomically when a record is dropped, else appended to as usual.
        """
        records = self.records()
        keep = [r for r in records if key(r) != key(record)]
        if len(keep) == len(records):
            self.append(record)
            return
        lines = [json.dumps(r, sort_keys=True, default=jsonable) + "\n" for r in [*keep, record]]
        write_atomic(self.jsonl, "".join(lines))

    # ---- sessions of samples (bench device) ---------------------------------------------------------------

    @property
    def partial(self) -> Path:
        """``<name>.jsonl.partial``: the session in progress (or interrupted, resumable)."""
        return results_dir() / f"{self.name}.jsonl.partial"

    def start_session(self, header: dict[str, Any]) -> str:
        """Start a new session in the partial file (any earlier partial one is dropped); returns its id.

        The complete result in ``<name>.jsonl`` is not touched until :meth:`finish_session`.
        """
        session = secrets.token_hex(8)
        write_atomic(self.partial, json.dumps({**header, "session": session}, sort_keys=True, default=jsonable) + "\n")
        return session

    def resume_session(self) -> tuple[Path, list[dict[str, Any]]]:
        """The session to continue: the partial one, else the complete one; nothing is written.

        Returns:
            The file read and its records (empty when there is none).
        """
        path = self.partial if self.partial.is_file() else self.jsonl
        return path, read_jsonl(path)

    def continue_session(self, header: dict[str, Any]) -> None:
        """Continue the session :meth:`resume_session` read: append one more connection ``header`` to the
        partial file (a complete one is first copied into a new partial file, and stays as it is)."""
        if not self.partial.is_file() and self.jsonl.is_file():
            write_atomic(self.partial, self.jsonl.read_bytes())
        self.append_partial(header)

    def append_partial(self, record: dict[str, Any]) -> None:
        """Append one record to the session in progress (flushed and fsynced)."""
        append_jsonl(self.partial, record)

    def finish_session(self, summary: dict[str, Any]) -> Path:
        """The session is complete: it replaces ``<name>.jsonl``, then ``summary`` replaces ``<name>.json``.

        ``summary`` must carry the session id (``session``) and the number of samples (``samples``); a
        kill between the two replaces leaves a pair :meth:`incomplete` reports.
        """
        os.replace(self.partial, self.jsonl)
        return self.write_summary(summary)

    def incomplete(self) -> str | None:
        """Why ``<name>.json`` and ``<name>.jsonl`` are not one complete session, or None when they are.

        Complete: the summary names a session and a number of samples N, and the JSONL holds that session
        with the samples 0..N-1. A summary without ``session`` (not a sampled result) is not checked.
        """
        summary = self.summary()
        if summary is None:
            return f"{self.summary_path} is missing or unreadable"
        session, n = summary.get("session"), summary.get("samples")
        if session is None:
            return None
        recs = self.records()
        if not any(r.get("type") == "session" and r.get("session") == session for r in recs):
            return f"{self.jsonl} does not hold the session {session} that {self.summary_path.name} summarizes"
        got = {r.get("index") for r in recs if r.get("type") == "sample"}
        have = sum(1 for i in range(int(n or 0)) if i in got)
        if have != n:
            return f"{self.jsonl} holds {have} of the {n} samples {self.summary_path.name} counts"
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
