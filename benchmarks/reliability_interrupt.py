"""Issue 15: interrupted runs, two writers at once, a moved build, full and read-only file systems, an edited
generated file; each observation of the issue repeated on a COPY of a small build, with what happens now.

    nice .venv/bin/python benchmarks/reliability_interrupt.py [--data mnist.npz] [--moments 20] [--seed 0]
        [--doc docs/reliability.md] [--json out.json]

The small build: ``edgedigit pipeline --board host --variant mlp --epochs 1 --samples 40 --stress-iterations
20 --bench-runs 20`` on the first 3,000 training and 500 test images of ``--data`` (default
``$EDGEDIGIT_DATA``; without it scikit-learn's digits, the offline fallback, which the output says). Everything
happens in a temporary folder; ./build is never touched. Seeded: the kill moments and signals are the same
for the same ``--seed``. Root is needed for the tmpfs and bind mounts (else those rows say "skipped").

Kills: for each of ``quantize``, ``export``, ``report``, ``bench device`` (host board) and ``pipeline``,
``--moments`` runs are started one after the other on the same copy (``bench device`` with 500 samples, so
that most of its time is streaming) and each is stopped at a random moment
within the duration of an uninterrupted run, alternately by SIGINT to its process group (Ctrl-C) and by
SIGKILL to the edgedigit process alone. Each next run starts from what the killed one left (the worst
case for recovery). After every kill: every JSON output parses, every output is whole (the old or the new
bytes, or the old ones set aside by a replace to be put back at the next start), and every pipeline stage
the stamps call up to date has complete outputs equal to the uninterrupted run's (``pipeline.up_to_date``
evaluated on the real stage list). Every ``--recover-every`` kills, and at the end, an uninterrupted run
must finish with exit 0, byte-identical outputs and no leftover temporary file. ``bench device`` keeps its
old complete result through every kill (its latency figures differ run to run, so its samples are compared
field by field: predictions and raw outputs). The pipeline runs have their stamps removed before each start
(train and bench compare excepted: 45 s of valgrind) so that each has its whole chain ahead.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLCHAIN = REPO / "toolchain"
sys.path.insert(0, str(TOOLCHAIN))

PIPE = ["--board", "host", "--variant", "mlp", "--epochs", "1", "--samples", "40", "--stress-iterations", "20",
        "--bench-runs", "20"]
SIDE_RE = re.compile(r"^\..+\.(\d+)-[0-9a-f]+\.ed(tmp|old)$")
MARK_START, MARK_END = "<!-- reliability_interrupt:start -->", "<!-- reliability_interrupt:end -->"


# ---- running edgedigit -----------------------------------------------------------------------------------


def env_for(build: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(TOOLCHAIN), "EDGEDIGIT_BUILD": str(build), "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONUNBUFFERED": "1"}
    env.pop("EDGEDIGIT_DATA", None)
    return {**env, **(extra or {})}


def command(args: list[str]) -> list[str]:
    return [sys.executable, "-c", "from edgedigit.cli import main; main()", *map(str, args)]


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def errors(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.startswith("error:")]

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.err

    @property
    def one_line(self) -> bool:
        return self.code == 1 and len(self.errors) == 1 and not self.traceback


def run(args: list[str], build: Path, extra: dict[str, str] | None = None, timeout: float = 900) -> Run:
    t0 = time.monotonic()
    p = subprocess.run(command(args), env=env_for(build, extra), capture_output=True, text=True, timeout=timeout)
    return Run(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def session_pids(sid: int) -> list[tuple[int, str]]:
    """Processes of session ``sid`` (what a killed run left running): (pid, name)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                text = (d / "stat").read_text()
                fields = text.rsplit(")", 1)[1].split()
                if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
                    out.append((int(d.name), text.split("(", 1)[1].rsplit(")", 1)[0]))
    return out


@dataclass
class Killed:
    signal: str
    at: float
    code: int | None
    finished_first: bool
    orphans: list[str]
    err: str


def run_and_kill(args: list[str], build: Path, at: float, sig: int) -> Killed:
    """Start edgedigit in its own session, send ``sig`` after ``at`` s (SIGINT: to the group, as Ctrl-C does;
    SIGKILL: to the edgedigit process only), wait; count and then stop what it left running."""
    p = subprocess.Popen(command(args), env=env_for(build), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        p.wait(timeout=at)
        finished = True
    except subprocess.TimeoutExpired:
        finished = False
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGINT:
                os.killpg(p.pid, signal.SIGINT)
            else:
                os.kill(p.pid, signal.SIGKILL)
    try:
        _, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # did not stop on SIGINT: stop it for good (counted as such)
        os.killpg(p.pid, signal.SIGKILL)
        _, err = p.communicate()
    time.sleep(0.3)  # give the kernel's parent-death signals a moment
    left = session_pids(p.pid)
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return Killed(signal.Signals(sig).name, at, p.returncode, finished, [name for _, name in left], err or "")


# ---- what is on disk -------------------------------------------------------------------------------------


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(folder: Path, skip_build: bool = True) -> dict[str, str]:
    """relative path -> sha256 of every file (not a firmware project's make outputs in ``build/``)."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): sha(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and not (skip_build and "build" in p.relative_to(folder).parts)}


def leftovers(build: Path) -> list[Path]:
    return [p for p in build.rglob(".*") if SIDE_RE.match(p.name)]


def torn_or_broken(build: Path) -> list[str]:
    """JSON files that do not parse; JSONL files with a line that does not parse (a torn last line included)."""
    bad = []
    for p in build.rglob("*.json"):
        if any(part.startswith(".") for part in p.relative_to(build).parts):
            continue
        try:
            json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError):
            bad.append(str(p.relative_to(build)))
    for p in [*build.rglob("*.jsonl"), *build.rglob("*.jsonl.partial")]:
        for line in p.read_text(errors="replace").splitlines():
            try:
                json.loads(line)
            except ValueError:
                bad.append(f"{p.relative_to(build)} (torn line)")
                break
    return bad


def jsonl_complete(path: Path) -> bool:
    """A device results file that is whole on its own: a session of N samples and the samples 0..N-1."""
    if not path.is_file():
        return False
    recs = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    heads = [r for r in recs if r.get("type") == "session"]
    got = {r.get("index") for r in recs if r.get("type") == "sample"}
    return bool(heads) and all(i in got for i in range(int(heads[0].get("samples", -1))))


def device_projection(build: Path, name: str = "device-host-mlp.jsonl") -> list[tuple] | None:
    path = build / "results" / name
    if not path.is_file():
        return None
    recs = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    return sorted((r["index"], r["label"], r["predicted"], tuple(r["raw"]), tuple(r["tflm"]))
                  for r in recs if r.get("type") == "sample")


class Audit:
    """Evaluates the real pipeline's stages on a build folder: which are up to date, and are those right."""

    def __init__(self, data: Path, ref: dict[str, str], device_ref: list[tuple]) -> None:
        from edgedigit.models.data import load_dataset

        self.ds = load_dataset(data)
        self.data, self.ref, self.device_ref = data, ref, device_ref

    def stages(self, build: Path) -> list[tuple[str, bool, str | None]]:
        """(stage, up to date, what is wrong with an up-to-date stage's outputs or None)."""
        from edgedigit.core.stage import Blocked
        from edgedigit.pipeline import PipelineConfig, build_stages, up_to_date

        os.environ["EDGEDIGIT_BUILD"] = str(build)
        cfg = PipelineConfig(board="host", variants=["mlp"], seed=0, epochs=1, samples=40, stress_iterations=20,
                             bench_runs=20, data=self.data)
        out = []
        for stage in build_stages(cfg, lambda: self.ds):
            try:
                fresh = up_to_date(stage, stage.inputs())
            except (Blocked, OSError, ValueError):
                fresh = False
            out.append((stage.name, fresh, self.wrong(stage, build) if fresh else None))
        return out

    def wrong(self, stage, build: Path) -> str | None:
        for p in stage.outputs():
            rel = Path(p).relative_to(build).as_posix()
            if rel in self.ref and sha(Path(p)) != self.ref[rel]:
                return f"{rel} differs from the uninterrupted run"
            if rel.endswith(".json"):
                try:
                    json.loads(Path(p).read_text())
                except ValueError:
                    return f"{rel} does not parse"
        if stage.name.startswith("bench device") and device_projection(build) != self.device_ref:
            return "device samples differ from the uninterrupted run"
        if stage.name == "report":
            md = (build / "reports" / "report.md").read_text()
            missing = [png for png in re.findall(r"\(([\w-]+\.png)\)", md) if not (build / "reports" / png).is_file()]
            if missing:
                return f"report.md names missing plots {missing}"
        return None


# ---- the experiments -------------------------------------------------------------------------------------


@dataclass
class Trials:
    command: str
    full_seconds: float = 0.0
    kills: Counter = field(default_factory=Counter)
    finished_first: int = 0
    exit_codes: Counter = field(default_factory=Counter)
    orphans: Counter = field(default_factory=Counter)
    broken: list = field(default_factory=list)
    lost: list = field(default_factory=list)
    put_aside: int = 0
    leftovers_max: int = 0
    stale: list = field(default_factory=list)
    old_result_kept: int = 0
    summary_lagging: int = 0  # killed between the JSONL's and the summary's replace: the stamp must say stale
    recoveries: int = 0
    recovered_identical: int = 0
    recovery_problems: list = field(default_factory=list)
    sigint_tracebacks: int = 0

    def row(self) -> str:
        kills = " + ".join(f"{n} {s}" for s, n in sorted(self.kills.items()))
        codes = ", ".join(f"{c}: {n}" for c, n in sorted(self.exit_codes.items(), key=lambda kv: str(kv[0])))
        extra = (f"; old complete result kept through {self.old_result_kept}/{sum(self.kills.values())} kills, "
                 f"summary behind its JSONL after {self.summary_lagging}") if self.command.startswith("bench device") else ""
        return (f"| `{self.command}` | {self.full_seconds:.1f} s | {kills} ({self.finished_first} finished first) | "
                f"{codes} | {len(self.broken)} | {len(self.lost)} ({self.put_aside} set aside, put back) | "
                f"{len(self.stale)} | {self.leftovers_max} | {_names(self.orphans)} | "
                f"{self.recovered_identical}/{self.recoveries}{extra} |")


def _names(counter: Counter) -> str:
    return ", ".join(f"{n} {name}" for name, n in sorted(counter.items())) if counter else "0"


def kill_trials(name: str, args: list[str], build: Path, outputs: list[str], audit: Audit, moments: int,
                rng: random.Random, recover_every: int, prepare=None) -> Trials:
    """``moments`` chained interrupted runs of ``args`` on ``build`` (see the module docstring).

    ``outputs``: files or folders (relative to ``build``) that must be byte-identical to the uninterrupted
    run's after every kill (or set aside to be put back) and after every re-run.
    """
    t = Trials(name)
    if prepare:
        prepare()
    full = run(args, build)
    if full.code != 0:
        raise SystemExit(f"{name}: the uninterrupted run failed: {full.err[-2000:]}")
    if prepare:
        prepare()
    again = run(args, build)  # warm: the first run may fill caches, and kills drawn over it would mostly come late
    t.full_seconds = min(full.seconds, again.seconds)
    ref = {rel: tree(build / rel) if (build / rel).is_dir() else {"": sha(build / rel)} for rel in outputs}
    device_file = build / "results" / "device-host-mlp.jsonl"
    device_ref = device_projection(build)  # the samples of the uninterrupted run (this command's --samples)
    for k in range(1, moments + 1):
        if prepare:
            prepare()
        before_device = sha(device_file) if device_file.is_file() else None
        sig = signal.SIGINT if k % 2 else signal.SIGKILL
        at = rng.uniform(0.0, t.full_seconds)
        extra = ["--resume"] if name.startswith("bench device") and k % 4 == 3 else []
        res = run_and_kill(args + extra, build, at, sig)
        t.kills[res.signal] += 1
        t.finished_first += res.finished_first
        t.exit_codes[res.code] += 1
        t.orphans.update(res.orphans)
        if sig == signal.SIGINT and "Traceback (most recent call last)" in res.err:
            t.sigint_tracebacks += 1
        t.broken += [f"kill {k}: {b}" for b in torn_or_broken(build)]
        side = leftovers(build)
        t.leftovers_max = max(t.leftovers_max, len(side))
        for rel, files in ref.items():
            final = build / rel
            if final.exists():
                now = tree(final) if final.is_dir() else {"": sha(final)}
                if now != files:
                    t.lost.append(f"kill {k}: {rel} is neither the old nor the new output")
            elif any(p.name.startswith(f".{final.name}.") and p.name.endswith(".edold") for p in side):
                t.put_aside += 1
            else:
                t.lost.append(f"kill {k}: {rel} missing")
        if before_device is not None:  # the device result: the old complete one, or a new complete one
            after = sha(device_file) if device_file.is_file() else None
            if after == before_device:
                t.old_result_kept += 1
            elif not (jsonl_complete(device_file) and device_projection(build) == device_ref):
                t.lost.append(f"kill {k}: the device result is neither the old complete one nor a new complete one")
            from edgedigit.core.results import ResultFile

            os.environ["EDGEDIGIT_BUILD"] = str(build)
            t.summary_lagging += ResultFile("device-host-mlp").incomplete() is not None
        t.stale += [f"kill {k}: {s}: {why}" for s, fresh, why in audit.stages(build) if fresh and why]
        if k % recover_every == 0 or k == moments:
            if prepare and k != moments:
                prepare()
            rec = run(args, build)
            t.recoveries += 1
            now = {rel: tree(build / rel) if (build / rel).is_dir() else {"": sha(build / rel)} for rel in outputs
                   if (build / rel).exists()}
            same = now == ref
            if name.startswith(("bench device", "pipeline")):  # latencies differ run to run: the samples' fields
                same = same and jsonl_complete(device_file) and device_projection(build) == device_ref
            problems = []
            if rec.code != 0:
                problems.append(f"exit {rec.code}: {rec.err[-300:]}")
            if leftovers(build):
                problems.append(f"leftovers {[p.name for p in leftovers(build)]}")
            if not same:
                problems.append("outputs differ from the uninterrupted run")
            if name.startswith("pipeline"):
                stale = [s for s, fresh, _ in audit.stages(build) if not fresh]
                if stale:
                    problems.append(f"not up to date after the re-run: {stale}")
            t.recovered_identical += not problems
            t.recovery_problems += [f"after kill {k}: {p}" for p in problems]
    return t


def pipeline_prepare(build: Path):
    def prepare() -> None:  # every stage but train and bench compare has to run again
        for stamp in (build / "stamps").glob("*.json"):
            if not stamp.name.startswith(("train", "bench_compare")):
                stamp.unlink()
    return prepare


def concurrency(base: Path, root: Path, data: Path) -> list[dict]:
    """Two writers at once: the second is refused naming the first; both folders' outputs stay whole."""
    out = []
    pairs = [("bench device + bench device", ["bench", "device", "--board", "host", "--variant", "mlp", "--samples",
                                             "40", "--data", data, "--project", "{b}/firmware/host/mlp-native"],
              ["bench", "device", "--board", "host", "--variant", "mlp", "--samples", "40", "--data", data, "--project",
               "{b}/firmware/host/mlp-native"]),
             ("pipeline + export --out", ["pipeline", *PIPE, "--data", data],
              ["export", "--board", "host", "--variant", "mlp", "--out", "{b}/firmware/host/mlp-native"]),
             ("export + export (one --out)", ["export", "--board", "host", "--variant", "mlp", "--out", "{b}/fw"],
              ["export", "--board", "host", "--variant", "mlp", "--out", "{b}/fw"])]
    for label, a, b in pairs:
        build = root / f"conc-{len(out)}"
        subprocess.run(["cp", "-a", str(base), str(build)], check=True)
        pipeline_prepare(build)()
        a = [str(x).replace("{b}", str(build)) for x in a]
        b = [str(x).replace("{b}", str(build)) for x in b]
        first = subprocess.Popen(command(a), env=env_for(build), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        lock = build / ".edgedigit.lock"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and f'"pid": {first.pid}' not in (lock.read_text() if lock.exists() else ""):
            time.sleep(0.05)
        second = run(b, build)
        readers = [run(r, build).code for r in (["boards"], ["data", "--data", data, "--json"],
                                                ["select", "--board", "host"])]
        a_out, a_err = first.communicate(timeout=900)
        from edgedigit.core.results import ResultFile
        from edgedigit.targets.export import project_changes

        os.environ["EDGEDIGIT_BUILD"] = str(build)
        intact = ResultFile("device-host-mlp").incomplete() is None and \
            project_changes(build / "firmware" / "host" / "mlp-native") == [] and not leftovers(build)
        if (build / "fw").exists():
            intact = intact and project_changes(build / "fw") == []
        out.append({"pair": label, "first_exit": first.returncode, "second_exit": second.code,
                    "second_one_line": second.one_line, "second_message": second.errors[:1],
                    "names_first_pid": f"pid {first.pid}" in second.err, "readers_exit": readers, "intact": intact})
        shutil.rmtree(build)
    return out


def moved(base: Path, root: Path, data: Path) -> dict:
    """``cp -a build other && EDGEDIGIT_BUILD=other edgedigit pipeline``: how many stages run again."""
    other = root / "moved" / "other"
    other.parent.mkdir()
    subprocess.run(["cp", "-a", str(base), str(other)], check=True)
    res = run(["pipeline", *PIPE, "--data", data], other)
    orig = run(["pipeline", *PIPE, "--data", data], base)
    shutil.rmtree(other.parent)

    def ran(r: Run) -> int:
        return sum(": ran (" in ln for ln in r.out.splitlines())

    return {"moved_ran": ran(res), "moved_up_to_date": sum("skipped (up to date)" in ln for ln in res.out.splitlines()),
            "original_ran": ran(orig), "exit": [res.code, orig.code]}


FS_COMMANDS = [("quantize mlp", ["quantize", "mlp", "--data", "{d}"]),
               ("export --board host --variant mlp", ["export", "--board", "host", "--variant", "mlp"]),
               ("report", ["report", "--board", "host"]),
               ("bench device --board host --project P", ["bench", "device", "--board", "host", "--variant", "mlp",
                                                          "--samples", "40", "--data", "{d}", "--project", "{p}"]),
               ("pipeline", ["pipeline", *PIPE, "--data", "{d}"])]


def _mount(args: list[str]) -> str | None:
    p = subprocess.run(args, capture_output=True, text=True)
    return None if p.returncode == 0 else (p.stderr.strip() or f"exit {p.returncode}")


def refusing_filesystems(base: Path, root: Path, data: Path) -> dict:
    """Each command on a full file system and on a read-only bind mount: one line, no traceback, nothing changed."""
    result: dict = {"full": [], "readonly": [], "full_how": None, "skipped": None}
    size = sum(p.stat().st_size for p in base.rglob("*") if p.is_file())
    mnt = root / "full"
    mnt.mkdir()
    mb = size // 2**20 + 8
    why = _mount(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(mnt)])
    result["full_how"] = f"tmpfs of {mb} MiB"
    loop = None
    if why is not None:  # no tmpfs: a loop file with ext4
        loop = root / "loop.img"
        subprocess.run(["truncate", "-s", f"{mb}M", str(loop)], check=True)
        subprocess.run(["mkfs.ext4", "-q", str(loop)], check=False, capture_output=True)
        why2 = _mount(["mount", "-o", "loop", str(loop), str(mnt)])
        result["full_how"] = f"ext4 loop file of {mb} MiB"
        if why2 is not None:
            result["skipped"] = f"cannot mount (tmpfs: {why}; loop: {why2}); run as root"
            return result
    try:
        build = mnt / "build"
        subprocess.run(["cp", "-a", str(base), str(build)], check=True)
        pipeline_prepare(build)()
        shutil.rmtree(build / "firmware" / "host" / "mlp-native" / "build")  # bench device must compile
        filler = mnt / "filler"
        with open(filler, "wb") as f:  # fill it, then give back 64 KiB: room for the lock, not for an output
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        os.truncate(filler, max(0, filler.stat().st_size - 65536))
        for label, args in FS_COMMANDS:
            before = tree(build, skip_build=False)
            r = run([a.replace("{d}", str(data)).replace("{p}", str(build / "firmware/host/mlp-native"))
                     for a in args], build)
            after = tree(build, skip_build=False)
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)
                             and not k.startswith(("stamps/", ".edgedigit.lock")))
            make_objects = [k for k in changed if re.match(r"firmware/[^/]+/[^/]+/build/", k)]  # make's own cache
            changed = [k for k in changed if k not in make_objects]
            result["full"].append({"command": label, "exit": r.code, "one_line": r.one_line, "traceback": r.traceback,
                                   "message": r.errors[:1], "changed": changed, "make_objects": make_objects,
                                   "leftovers": len(leftovers(build))})
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
    ro = root / "ro"
    ro.mkdir()
    copy = root / "ro-src"
    subprocess.run(["cp", "-a", str(base), str(copy)], check=True)
    why = _mount(["mount", "--bind", str(copy), str(ro)]) or _mount(["mount", "-o", "remount,bind,ro", str(ro)])
    if why is not None:
        result["readonly_skipped"] = why
        subprocess.run(["umount", str(ro)], check=False)
        return result
    try:
        before = tree(copy, skip_build=False)
        for label, args in FS_COMMANDS:
            r = run([a.replace("{d}", str(data)).replace("{p}", str(ro / "firmware/host/mlp-native")) for a in args], ro)
            result["readonly"].append({"command": label, "exit": r.code, "one_line": r.one_line,
                                       "traceback": r.traceback, "message": r.errors[:1]})
        result["readonly_unchanged"] = tree(copy, skip_build=False) == before
    finally:
        subprocess.run(["umount", str(ro)], check=False)
    return result


def edited_file(base: Path, root: Path) -> dict:
    """One number of the generated model C edited by hand: build refuses it by name; --force builds and says so."""
    build = root / "edited"
    subprocess.run(["cp", "-a", str(base), str(build)], check=True)
    src = build / "firmware" / "host" / "mlp-native" / "src"
    target = max(src.glob("*.c"), key=lambda p: p.stat().st_size)  # the model's weights
    text = target.read_text()
    m = re.search(r"(?<![\w.])(\d+)(?=,)", text[len(text) // 2:])
    i = len(text) // 2 + m.start(1)
    target.write_text(text[:i] + str(int(m.group(1)) ^ 1) + text[i + len(m.group(1)):])
    refused = run(["build", "--board", "host", "--variant", "mlp"], build)
    forced = run(["build", "--board", "host", "--variant", "mlp", "--force"], build)
    rec = json.loads((build / "results" / "builds.jsonl").read_text().splitlines()[-1])
    nogcc = root / "nogcc"  # a PATH with make but no arm-none-eabi-gcc
    nogcc.mkdir()
    os.symlink(shutil.which("make") or "/usr/bin/make", nogcc / "make")
    tool = run(["build", "--board", "qemu-m4", "--variant", "mlp"], build, {"PATH": str(nogcc)})
    shutil.rmtree(build)
    return {"file": target.name, "refused_exit": refused.code, "refused_one_line": refused.one_line,
            "refused_message": refused.errors[:1], "names_file": str(target) in refused.err,
            "forced_exit": forced.code, "forced_says": "(--force:" in forced.out, "forced_record": rec.get("lock"),
            "tool_exit": tool.code, "tool_message": tool.errors[:1], "tool_one_line": tool.one_line}


def patched_firmware(base: Path, root: Path, data: Path) -> dict:
    """One weight of the exported native model changed after export, on host and qemu-m4 (observation 6).

    ``bench device`` first refuses the project by its lock file; with ``--force`` the firmware is built and
    flashed, and the CRC-32 it computes over its model data at boot is what refuses it.
    """
    rows = []
    for board in ("host", "qemu-m4"):
        build = root / f"patched-{board}"
        subprocess.run(["cp", "-a", str(base), str(build)], check=True)
        exported = run(["export", "--board", board, "--variant", "mlp", "--backend", "native"], build)
        project = build / "firmware" / board / "mlp-native"
        bench = ["bench", "device", "--board", board, "--variant", "mlp", "--data", data, "--samples", "2",
                 "--project", project]
        before = run(bench, build)
        src = project / "src" / "edgedigit_native_model.c"
        text = src.read_text()
        m = re.search(r"static const int8_t (?:EDGEDIGIT_ALIGNED )?(\w+_weights)\[\d+\](?: EDGEDIGIT_ROM)? = \{\n    (-?\d+)",
                      text)
        value = int(m.group(2))
        src.write_text(text[:m.start(2)] + str(value + 1 if value < 127 else value - 1) + text[m.end(2):])
        refused = run(bench, build)
        forced = run([*bench, "--force"], build)
        rows.append({"board": board, "export_exit": exported.code, "unpatched_exit": before.code,
                     "array": m.group(1), "lock_exit": refused.code, "lock_one_line": refused.one_line,
                     "lock_message": refused.errors[:1], "crc_exit": forced.code, "crc_one_line": forced.one_line,
                     "crc_message": forced.errors[:1],
                     "crc_refused": any("the firmware's model data has CRC-32" in e for e in forced.errors)})
        shutil.rmtree(build)
    return {"rows": rows}


def smaller(base: Path, root: Path, data: Path) -> dict:
    """validate twice (records), and the same data as .npz and as gzipped IDX files (hash)."""
    build = root / "smaller"
    subprocess.run(["cp", "-a", str(base), str(build)], check=True)
    jsonl = build / "results" / "validate.jsonl"
    before = len(jsonl.read_text().splitlines())
    run(["validate", "mlp", "--data", data], build)
    run(["validate", "mlp", "--data", data], build)
    after = len(jsonl.read_text().splitlines())
    import numpy as np

    idx = root / "idx"
    idx.mkdir()
    with np.load(data) as z:
        for key, stem, magic in (("x_train", "train-images-idx3-ubyte", 2051), ("y_train", "train-labels-idx1-ubyte", 2049),
                                 ("x_test", "t10k-images-idx3-ubyte", 2051), ("y_test", "t10k-labels-idx1-ubyte", 2049)):
            a = z[key].astype(np.uint8)
            raw = struct.pack(">I", magic) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()
            (idx / f"{stem}.gz").write_bytes(gzip.compress(raw))
    h_npz = json.loads(run(["data", "--data", data, "--json"], build).out)["sha256"]
    h_idx = json.loads(run(["data", "--data", idx, "--json"], build).out)["sha256"]
    shutil.rmtree(build)
    return {"validate_records_before": before, "validate_records_after_two_reruns": after,
            "npz_sha256": h_npz, "idx_sha256": h_idx, "same_hash": h_npz == h_idx}


# ---- report ----------------------------------------------------------------------------------------------


def markdown(r: dict) -> list[str]:
    lines = [MARK_START, "## Interruption, concurrency, moves, full and read-only disks (`benchmarks/reliability_interrupt.py`)",
             "", f"Small build: {r['build']}. {r['machine']}; {r['seconds']:.0f} s in all. Command: "
             f"`{r['command']}`.", "",
             "### Killed at random moments (issue 15, observations 2 and 5)", "",
             f"{r['moments']} interrupted runs per command, one after the other on the same copy (each starts from "
             "what the previous kill left), killed at a moment drawn uniformly within an uninterrupted run's "
             "duration (the shorter of two, seeded), alternately by SIGINT to the process group (Ctrl-C) and by "
             "SIGKILL to edgedigit "
             f"alone; an uninterrupted re-run every {r['recover_every']} kills and at the end.", "",
             "| command | uninterrupted run | kills | exit codes | broken files | outputs lost | stale stages up to date "
             "| most leftovers after a kill | processes left running 0.3 s after the kill | re-runs identical, no leftovers |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [t for t in r["kill_rows"]]
    lines += ["", "*Broken files*: a JSON output that does not parse or a JSONL with a torn line. *Outputs lost*: an "
              "output that is neither the old nor the new one (an output set aside by a replace interrupted between "
              "its two renames is put back at the next start, and counted apart). *Stale stages up to date*: "
              "stages `pipeline` would skip whose outputs are incomplete or differ from the uninterrupted run "
              "(the real stage list and `pipeline.up_to_date`, evaluated after every kill). *Leftovers*: hidden "
              "`.edtmp`/`.edold` files of the killed run; the next run's lock sweeps them. Exit codes: 130 is "
              "Ctrl-C handled, -9 SIGKILL, -2 a Ctrl-C that came before edgedigit's handler was in place (while "
              "Python imports), 1 a Ctrl-C that stopped make or the firmware first (their failure is the one error "
              "line), 0 a run that finished before the signal (or as it came).", "",
              "### Two writers at once (observation 3)", "",
              "| writers | first exit | second exit | second refused in one line naming the first's pid | "
              "readers (boards, data, select) | outputs intact | message |", "|---|---|---|---|---|---|---|"]
    for c in r["concurrency"]:
        lines.append(f"| {c['pair']} | {c['first_exit']} | {c['second_exit']} | "
                     f"{'yes' if c['second_one_line'] and c['names_first_pid'] else 'NO'} | "
                     f"{', '.join(map(str, c['readers_exit']))} | {'yes' if c['intact'] else 'NO'} | "
                     f"{_short(c['second_message'][0]) if c['second_message'] else ''} |")
    m = r["moved"]
    lines += ["", "### A moved build (observation 1)", "",
              f"`cp -a build other && EDGEDIGIT_BUILD=other edgedigit pipeline ...`: **{m['moved_ran']} stages ran**, "
              f"{m['moved_up_to_date']} up to date; the original folder: {m['original_ran']} ran.", "",
              "### Full and read-only file systems (observation 4)", ""]
    fs = r["filesystems"]
    if fs.get("skipped"):
        lines.append(f"Skipped: {fs['skipped']}.")
    else:
        lines += [f"Full: a copy of the build on a {fs['full_how']} filled up to 64 KiB; read-only: a copy behind "
                  "`mount --bind` + `remount,bind,ro`.", "",
                  "| file system | command | exit | one line, no traceback | outputs changed | message |",
                  "|---|---|---|---|---|---|"]
        for kind, rows in (("full", fs["full"]), ("read-only", fs["readonly"])):
            for row in rows:
                changed = len(row.get("changed", [])) if kind == "full" else \
                    (0 if fs.get("readonly_unchanged") else "?")
                if row.get("make_objects"):
                    changed = f"{changed} (+{len(row['make_objects'])} object files make finished before the disk was full)"
                lines.append(f"| {kind} | `{row['command']}` | {row['exit']} | "
                             f"{'yes' if row['one_line'] else 'NO'} | {changed} | "
                             f"{_short(row['message'][0]) if row['message'] else ''} |")
    e = r["edited"]
    s = r["smaller"]
    lines += ["", "### An edited generated file, a missing compiler, validate twice, IDX vs .npz (observations 6, 7)", "",
              f"- One number in `{e['file']}` changed by hand: `build` exit {e['refused_exit']}, one line naming the "
              f"file: {'yes' if e['refused_one_line'] and e['names_file'] else 'NO'} "
              f"({_short(e['refused_message'][0]) if e['refused_message'] else ''}); `build --force` exit "
              f"{e['forced_exit']}, says so: {'yes' if e['forced_says'] else 'NO'}, recorded in "
              f"`results/builds.jsonl` as `{e['forced_record']}`.",
              f"- `build --board qemu-m4` without arm-none-eabi-gcc on PATH: exit {e['tool_exit']}, "
              f"{_short(e['tool_message'][0]) if e['tool_message'] else ''}",
              f"- `validate mlp` twice more: `validate.jsonl` {s['validate_records_before']} -> "
              f"{s['validate_records_after_two_reruns']} record(s).",
              f"- The same data as `.npz` and as gzipped IDX files: sha256 {s['npz_sha256'][:16]}… and "
              f"{s['idx_sha256'][:16]}…: {'the same' if s['same_hash'] else 'DIFFERENT'}.", "",
              "### A firmware whose model array was patched after export (observation 6)", "",
              "One value of the first weight array in `edgedigit_native_model.c` of an exported `mlp` (native) "
              "changed by one; `bench device --project P` run before the change (exit shown), after it, and after "
              "it with `--force` (built anyway: the firmware's boot CRC-32 over its model data is the check).", "",
              "| board | before the change | after: exit, one line | message | with --force: exit, one line, "
              "refused by the CRC | message |", "|---|---|---|---|---|---|"]
    for row in r["patched"]["rows"]:
        lines.append(f"| {row['board']} | {row['unpatched_exit']} | {row['lock_exit']}, "
                     f"{'yes' if row['lock_one_line'] else 'NO'} | "
                     f"{_short(row['lock_message'][0]) if row['lock_message'] else ''} | {row['crc_exit']}, "
                     f"{'yes' if row['crc_one_line'] else 'NO'}, {'yes' if row['crc_refused'] else 'NO'} | "
                     f"{_short(row['crc_message'][0], 300) if row['crc_message'] else ''} |")
    lines += ["", MARK_END]
    return lines


def _short(message: str, limit: int = 170) -> str:
    m = re.sub(r"/tmp/[^\s/]+/", "…/", message)
    return (m[:limit] + ("…" if len(m) > limit else "")).replace("|", "/").replace("`", "'")


def write_doc(doc: Path, lines: list[str]) -> None:
    from edgedigit.core.fsutil import write_atomic

    text = doc.read_text() if doc.is_file() else ""
    block = "\n".join(lines)
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        tail = re.search(r"\n_\d{4}-\d\d-\d\d, \d+ s\._\n?$", text)
        at = tail.start() + 1 if tail else len(text)
        text = text[:at] + block + "\n\n" + text[at:]
    write_atomic(doc, text)


def small_data(data: Path | None, root: Path) -> tuple[Path, str]:
    import numpy as np

    from edgedigit.models.data import load_dataset, load_fallback

    ds = load_dataset(data) if data is not None else load_fallback()
    out = root / "small.npz"
    n_train, n_test = min(3000, len(ds.y_train)), min(500, len(ds.y_test))
    np.savez(out, x_train=ds.x_train[:n_train], y_train=ds.y_train[:n_train], x_test=ds.x_test[:n_test],
             y_test=ds.y_test[:n_test])
    what = "MNIST" if not ds.fallback else "the offline fallback (scikit-learn digits, NOT MNIST)"
    return out, f"{what}, first {n_train:,} training and {n_test:,} test images"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path(os.environ["EDGEDIGIT_DATA"]) if os.environ.get("EDGEDIGIT_DATA")
                   else None)
    p.add_argument("--moments", type=int, default=20, help="interrupted runs per command")
    p.add_argument("--recover-every", type=int, default=10, help="an uninterrupted re-run after this many kills")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--doc", type=Path, default=None, help="write the section into this page (docs/reliability.md)")
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    p.add_argument("--only", default="kills,concurrency,moved,fs,edited,patched,smaller")
    p.add_argument("--commands", default="quantize,export,report,bench,pipeline",
                   help="which commands the kill trials run (first word)")
    p.add_argument("--base", type=Path, default=None,
                   help="an existing small build made with the pipeline above and --data (copied, never changed)")
    args = p.parse_args(argv)
    # a shell that starts this in the background ignores SIGINT, and children inherit an ignored signal (Python
    # then installs no KeyboardInterrupt): handle it here, so that the children start with the default again
    signal.signal(signal.SIGINT, signal.default_int_handler)
    only = set(args.only.split(","))
    t0 = time.monotonic()
    rng = random.Random(args.seed)
    report: dict = {"moments": args.moments, "recover_every": args.recover_every, "seed": args.seed,
                    "command": (f"{'EDGEDIGIT_DATA=' + str(args.data) + ' ' if args.data else ''}nice .venv/bin/python "
                                f"benchmarks/reliability_interrupt.py --moments {args.moments} --recover-every "
                                f"{args.recover_every} --seed {args.seed} --doc docs/reliability.md")}
    with tempfile.TemporaryDirectory(prefix="edgedigit-interrupt-") as tmp:
        root = Path(tmp)
        data, report["build"] = small_data(args.data, root)
        report["build"] = (f"`edgedigit pipeline {' '.join(PIPE)}` on {report['build']}")
        base = root / "base"
        if args.base is not None:
            subprocess.run(["cp", "-a", str(args.base), str(base)], check=True)
            data = args.data
        else:
            print(f"building the small build ({report['build']}) ...", flush=True)
            first = run(["pipeline", *PIPE, "--data", data], base)
            if first.code != 0:
                print(first.out, first.err[-3000:])
                return 1
            print(first.out.strip().splitlines()[-1], flush=True)
        from edgedigit.core.results import machine

        mach = machine()
        report["machine"] = f"{mach['cpu']}, {mach['cores_logical']} logical cores, load {mach['loadavg_1min']} at the start"
        ref = {**{f"models/mlp/{k}": v for k, v in tree(base / "models" / "mlp").items()},
               **{f"firmware/host/mlp-native/{k}": v for k, v in tree(base / "firmware" / "host" / "mlp-native").items()}}
        audit = Audit(data, ref, device_projection(base))
        if "kills" in only:
            report["kill_rows"], report["kills"] = [], []
            proj = base / "firmware" / "host" / "mlp-native"
            specs = [("quantize mlp", ["quantize", "mlp", "--data", data], ["models/mlp"], None),
                     ("export --board host --variant mlp", ["export", "--board", "host", "--variant", "mlp"],
                      ["firmware/host/mlp-native"], None),
                     ("report --board host", ["report", "--board", "host"], ["reports"], None),
                     ("bench device --board host --samples 500 --project P",
                      ["bench", "device", "--board", "host", "--variant", "mlp", "--samples", "500", "--data", data,
                       "--project", proj], [], None),
                     ("pipeline", ["pipeline", *PIPE, "--data", data], ["models/mlp", "firmware/host/mlp-native"],
                      "pipeline")]
            for name, cmd, outs, prep in specs:
                if name.split()[0] not in args.commands.split(","):
                    continue
                build = root / "kills"
                subprocess.run(["cp", "-a", str(base), str(build)], check=True)
                cmd = [str(c).replace(str(base), str(build)) for c in cmd]
                print(f"killing `{name}` {args.moments} times ...", flush=True)
                t = kill_trials(name, cmd, build, outs, audit, args.moments, rng, args.recover_every,
                                pipeline_prepare(build) if prep else None)
                report["kill_rows"].append(t.row())
                report["kills"].append({k: (dict(v) if isinstance(v, Counter) else v) for k, v in t.__dict__.items()})
                print(t.row(), flush=True)
                for what in ("broken", "lost", "stale", "recovery_problems"):
                    for line in getattr(t, what)[:5]:
                        print(f"  {what}: {line}", flush=True)
                shutil.rmtree(build)
        if "concurrency" in only:
            print("two writers at once ...", flush=True)
            report["concurrency"] = concurrency(base, root, data)
            for c in report["concurrency"]:
                print(f"  {c}", flush=True)
        if "moved" in only:
            report["moved"] = moved(base, root, data)
            print(f"moved build: {report['moved']}", flush=True)
        if "fs" in only:
            print("full and read-only file systems ...", flush=True)
            report["filesystems"] = refusing_filesystems(base, root, data)
            for kind in ("full", "readonly"):
                for row in report["filesystems"].get(kind, []):
                    print(f"  {kind}: {row}", flush=True)
        if "edited" in only:
            report["edited"] = edited_file(base, root)
            print(f"edited file: {report['edited']}", flush=True)
        if "patched" in only:
            print("a firmware patched after export, host and qemu-m4 ...", flush=True)
            report["patched"] = patched_firmware(base, root, data)
            for row in report["patched"]["rows"]:
                print(f"  {row}", flush=True)
        if "smaller" in only:
            report["smaller"] = smaller(base, root, data)
            print(f"smaller: {report['smaller']}", flush=True)
    report["seconds"] = time.monotonic() - t0
    print(f"done in {report['seconds']:.0f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if args.doc and only >= {"kills", "concurrency", "moved", "fs", "edited", "patched", "smaller"}:
        write_doc(args.doc, markdown(report))
        print(f"wrote the section into {args.doc}")
    bad = sum(len(k["broken"]) + len(k["lost"]) + len(k["stale"]) + len(k["recovery_problems"])
              for k in report.get("kills", []))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
