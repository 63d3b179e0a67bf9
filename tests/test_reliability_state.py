"""Issue 15: the build folder under interruption, concurrency, moves and a refusing file system.

The lock (one writer per build folder, readers never blocked, released when the holder dies), staged
replaces (umask permissions, leftovers of a killed run cleaned, the old output put back after a kill between
the two renames), the one OSError funnel (a full disk or read-only folder is one line naming the path),
result sessions (a complete result survives an interrupted run; a summary and a shorter JSONL are
incomplete), stamps that name files relative to the build folder (a moved build re-runs nothing), and
validate records that are replaced, not duplicated. Full-disk and read-only mounts on real file systems are
in ``benchmarks/reliability_interrupt.py`` (they need root).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgedigit.cli import app
from edgedigit.core import fsutil
from edgedigit.core.errors import BuildLockedError
from edgedigit.core.lock import LOCK_NAME, build_lock
from edgedigit.core.results import ResultFile
from edgedigit.core.stage import Stage, file_hash
from edgedigit.pipeline import run_stages

TOOLCHAIN = Path(__file__).resolve().parents[1] / "toolchain"


def _python(code: str, build: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(TOOLCHAIN), "EDGEDIGIT_BUILD": str(build)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def _lines(stages, **kw):
    out = []
    run_stages(stages, echo=out.append, **kw)
    return [line.split(" (")[0] for line in out]


# ---- the build folder's lock ------------------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_holder(build_dir):
    with build_lock("edgedigit pipeline --board host"):
        with pytest.raises(BuildLockedError) as e, build_lock("edgedigit report"):
            pass
    assert str(e.value) == (f"another edgedigit run is using the build folder {build_dir} (pid {os.getpid()}: "
                            "edgedigit pipeline --board host); wait for it to finish, or use another folder "
                            "(EDGEDIGIT_BUILD)")
    with build_lock("edgedigit report"):  # released at the end of the block
        assert (build_dir / LOCK_NAME).is_file()


def test_the_kernel_releases_the_lock_of_a_killed_holder(build_dir):
    holder = _python("from edgedigit.core.lock import build_lock\nimport time\n"
                     "with build_lock('edgedigit quantize mlp'):\n    print('locked', flush=True)\n    time.sleep(60)",
                     build_dir)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BuildLockedError, match=rf"\(pid {holder.pid}: edgedigit quantize mlp\)"), \
                build_lock("edgedigit report"):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with build_lock("edgedigit report"):  # no stale lock to remove by hand
        pass


def test_writers_are_refused_in_one_line_and_readers_are_not_blocked(build_dir, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    data = tmp_path / "m.npz"
    np.savez(data, x_train=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y_train=np.arange(20) % 10,
             x_test=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), y_test=np.arange(10) % 10)
    runner = CliRunner()
    with build_lock("edgedigit pipeline --board host"):
        for args in (["report"], ["train", "mlp", "--data", str(data)], ["export", "--board", "host"],
                     ["bench", "device", "--board", "host"], ["pipeline", "--board", "host"]):
            res = runner.invoke(app, args)
            assert res.exit_code == 1, args
            assert res.output.splitlines() == [
                f"error: another edgedigit run is using the build folder {build_dir} (pid {os.getpid()}: edgedigit "
                "pipeline --board host); wait for it to finish, or use another folder (EDGEDIGIT_BUILD)"], args
        for args in (["boards"], ["data", "--data", str(data), "--json"], ["train", "--help"],
                     ["bench", "device", "--help"]):
            res = runner.invoke(app, args)
            assert res.exit_code == 0, (args, res.output)
        res = runner.invoke(app, ["select", "--board", "host"])  # a reader: refused for its own reason only
        assert res.output.startswith("error: no trained variant in "), res.output


def test_the_holder_is_recorded_with_what_was_typed(build_dir, monkeypatch, tmp_path):
    import edgedigit.core.lock as lock

    seen = []

    @contextlib.contextmanager
    def record(command, build=None):  # refuses, as a held lock would: the command itself never runs
        seen.append(command)
        raise BuildLockedError("held")
        yield

    monkeypatch.setattr(lock, "build_lock", record)
    for args in (["report", "--board", "host", "--out", str(tmp_path / "r")],
                 ["bench", "stress", "mlp", "rfe-lr", "--iterations", "5", "--json"],
                 ["pipeline", "--board", "host", "--variant", "mlp", "--variant", "cnn"]):
        assert CliRunner().invoke(app, args).output == "error: held\n"
    assert seen == [f"edgedigit report --board host --out {tmp_path / 'r'}",
                    "edgedigit bench stress mlp rfe-lr --iterations 5 --json",
                    "edgedigit pipeline --board host --variant mlp --variant cnn"]


# ---- staged replaces: permissions, leftovers, recovery ----------------------------------------------------


def test_staged_outputs_get_the_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        with fsutil.staged_dir(tmp_path / "project") as tmp:
            fsutil.write_atomic(tmp / "src" / "a.c", "int a;\n")
    finally:
        os.umask(old)
    assert (tmp_path / "project").stat().st_mode & 0o777 == 0o750  # not 0700 from mkdtemp
    assert (tmp_path / "project" / "src" / "a.c").stat().st_mode & 0o777 == 0o640  # not 0600 from mkstemp
    with fsutil.staged_dir(tmp_path / "again") as tmp:
        (tmp / "x").write_text("x")
    assert (tmp_path / "again").stat().st_mode & 0o777 == 0o777 & ~_umask()


def test_leftovers_of_dead_runs_are_swept_and_an_old_output_is_put_back(tmp_path):
    dead, live = _dead_pid(), os.getpid()
    models = tmp_path / "build" / "models"
    (models / "cnn").mkdir(parents=True)
    (models / "cnn" / "card.json").write_text("new")
    (models / f".cnn.{dead}-0a1b.edtmp").mkdir()  # a training killed while staging
    (models / f".cnn.{dead}-0a1b.edtmp" / "half.keras").write_text("half")
    (models / f".cnn.{dead}-77.edold").mkdir()  # killed after the replace, before removing the old one
    (models / f".mlp.{dead}-0c.edold").mkdir()  # killed between the two renames: mlp is missing
    (models / f".mlp.{dead}-0c.edold" / "card.json").write_text("old mlp")
    (models / f".card.json.{dead}-9f.edtmp").write_text("{")  # a write_atomic killed half way
    (models / f".rfe-lr.{live}-1.edtmp").mkdir()  # a live process's: kept
    found = fsutil.sweep(tmp_path / "build")
    assert sorted(p.name for p in found) == sorted([f".card.json.{dead}-9f.edtmp", f".cnn.{dead}-0a1b.edtmp",
                                                    f".cnn.{dead}-77.edold", f".mlp.{dead}-0c.edold"])
    assert sorted(p.name for p in models.iterdir()) == [f".rfe-lr.{live}-1.edtmp", "cnn", "mlp"]
    assert (models / "mlp" / "card.json").read_text() == "old mlp"
    assert (models / "cnn" / "card.json").read_text() == "new"


def test_a_kill_between_the_two_renames_loses_nothing(tmp_path):
    final = tmp_path / "reports"
    final.mkdir()
    (final / "report.md").write_text("the old report")
    child = _python(f"""
import os, signal
from pathlib import Path
from edgedigit.core import fsutil
real = Path.rename
def rename(self, target):
    real(self, target)
    if str(target).endswith('.edold'):
        os.kill(os.getpid(), signal.SIGKILL)  # the old output is aside, the new one not yet in place
Path.rename = rename
with fsutil.staged_dir(Path({str(final)!r})) as tmp:
    (tmp / 'report.md').write_text('the new report')
""", tmp_path)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not final.exists() and len(list(tmp_path.glob(".reports.*.edold"))) == 1
    with fsutil.staged_dir(final) as tmp:  # the next run puts the old one back first, then replaces it
        assert (final / "report.md").read_text() == "the old report"
        (tmp / "report.md").write_text("the next report")
    assert (final / "report.md").read_text() == "the next report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]


def test_a_failing_replace_keeps_the_old_output_and_no_temporary(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "a").write_text("old")
    with pytest.raises(RuntimeError), fsutil.staged_dir(final) as tmp:
        (tmp / "a").write_text("new")
        raise RuntimeError("boom")
    assert (final / "a").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_taking_the_lock_sweeps_the_build_folder(build_dir):
    dead = _dead_pid()
    (build_dir / "reports").mkdir(parents=True)
    (build_dir / "reports" / f".reports.{dead}-1.edtmp").mkdir()
    (build_dir / "firmware" / "host").mkdir(parents=True)
    (build_dir / "firmware" / "host" / f".mlp-native.{dead}-2.edtmp").mkdir()
    res = CliRunner().invoke(app, ["report"])  # fails (nothing measured) but takes the lock first
    assert res.exit_code == 1
    assert list((build_dir / "reports").iterdir()) == [] and list((build_dir / "firmware" / "host").iterdir()) == []


# ---- the one OSError funnel -------------------------------------------------------------------------------


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "No space left on device (ENOSPC; free some space"),
                                         (errno.EROFS, "Read-only file system (EROFS;"),
                                         (errno.EACCES, "Permission denied (EACCES;"),
                                         (errno.EDQUOT, "Disk quota exceeded (EDQUOT;")])
def test_refused_writes_are_one_line_naming_the_path(build_dir, monkeypatch, code, words):
    import edgedigit.report.document as document

    target = build_dir / "reports" / "report.md"

    def refuse(board=None, out=None):
        raise OSError(code, os.strerror(code), str(target))

    monkeypatch.setattr(document, "report", refuse)
    res = CliRunner().invoke(app, ["report"])
    lines = res.output.splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and "Traceback" not in res.output
    assert lines[0].startswith(f"error: {target}: {words}"), lines


def test_a_write_error_without_a_file_name_names_what_was_written(build_dir, monkeypatch):
    path = build_dir / "results" / "x.json"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")  # what write()/fsync() raise: no file name

    monkeypatch.setattr(fsutil.os, "fsync", full)
    with pytest.raises(OSError) as e:
        fsutil.write_json(path, {"a": 1})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert list(path.parent.iterdir()) == []  # no temporary left
    with pytest.raises(OSError) as e, fsutil.staged_dir(build_dir / "models" / "mlp") as tmp:
        fsutil.write_atomic(tmp / "card.json", "{}")
    assert e.value.filename == str(build_dir / "models" / "mlp" / "card.json")
    assert list((build_dir / "models").iterdir()) == []


def test_other_os_errors_are_bugs_and_keep_their_traceback(build_dir, monkeypatch):
    import edgedigit.report.document as document

    def bug(board=None, out=None):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(document, "report", bug)
    res = CliRunner().invoke(app, ["report"])
    assert isinstance(res.exception, OSError) and res.exception.errno == errno.EBADF


# ---- results: sessions, completeness, no duplicates -------------------------------------------------------


def _session(results: ResultFile, n: int, stop: int | None = None) -> str:
    session = results.start_session({"type": "session", "samples": n})
    for i in range(n if stop is None else stop):
        results.append_partial({"type": "sample", "index": i})
    if stop is None:
        results.finish_session({"samples": n, "session": session})
    return session


def test_a_session_replaces_the_complete_result_only_when_it_is_complete(build_dir):
    results = ResultFile("device-host-mlp")
    assert results.incomplete() == f"{results.summary_path} is missing or unreadable"
    first = _session(results, 10)
    before = results.jsonl.read_bytes(), results.summary_path.read_bytes()
    assert results.incomplete() is None and not results.partial.exists()
    _session(results, 10, stop=4)  # interrupted: the complete result is untouched
    assert (results.jsonl.read_bytes(), results.summary_path.read_bytes()) == before
    assert results.incomplete() is None and json.loads(results.summary_path.read_text())["session"] == first
    path, records = results.resume_session()
    assert path == results.partial and [r.get("index") for r in records] == [None, 0, 1, 2, 3]


def test_a_shorter_jsonl_or_another_session_is_incomplete(build_dir):
    results = ResultFile("device-host-mlp")
    _session(results, 1000)
    lines = results.jsonl.read_text().splitlines()
    results.jsonl.write_text("\n".join(lines[:256]) + "\n")  # Ctrl-C after 255 samples in the old design
    assert results.incomplete() == f"{results.jsonl} holds 255 of the 1000 samples device-host-mlp.json counts"
    _session(ResultFile("other"), 3)
    shutil.copy(ResultFile("other").jsonl, results.jsonl)  # a JSONL of another run beside this summary
    assert "does not hold the session" in results.incomplete()


def test_upsert_replaces_the_same_measurement_and_keeps_the_others(build_dir):
    from edgedigit.measure.validate import record_key

    results = ResultFile("validate")

    def rec(variant, model, test, acc):
        return {"variant": variant, "model_sha256": model, "dataset": {"sha256": "d", "test": test}, "acc": acc}

    for r in (rec("mlp", "m1", 100, 0.1), rec("cnn", "c1", 100, 0.2), rec("mlp", "m1", 100, 0.3),
              rec("mlp", "m2", 100, 0.4), rec("mlp", "m1", 50, 0.5), rec("mlp", "m1", 100, 0.6)):
        results.upsert(r, record_key)
    assert [(r["variant"], r["model_sha256"], r["dataset"]["test"], r["acc"]) for r in results.records()] == [
        ("cnn", "c1", 100, 0.2), ("mlp", "m2", 100, 0.4), ("mlp", "m1", 50, 0.5), ("mlp", "m1", 100, 0.6)]


# ---- stamps: relative names, moved builds, incomplete outputs ---------------------------------------------


def _stages(calls, *, complete=lambda: None):
    from edgedigit.core.paths import build_dir

    def run_a():
        calls.append("A")
        (build_dir() / "out").mkdir(parents=True, exist_ok=True)
        (build_dir() / "out" / "a.txt").write_text((build_dir() / "in.txt").read_text().upper())

    def run_b():
        calls.append("B")
        (build_dir() / "out" / "b.txt").write_text((build_dir() / "out" / "a.txt").read_text() + "!")

    return [Stage("A", lambda: {"in": file_hash(build_dir() / "in.txt")}, lambda: [build_dir() / "out" / "a.txt"],
                  run_a),
            Stage("B", lambda: {"a": file_hash(build_dir() / "out" / "a.txt")}, lambda: [build_dir() / "out" / "b.txt"],
                  run_b, complete)]


def test_a_moved_build_reruns_nothing(build_dir, tmp_path, monkeypatch):
    build_dir.mkdir()
    (build_dir / "in.txt").write_text("x")
    calls = []
    assert _lines(_stages(calls)) == ["A: ran", "B: ran"]
    stamp = json.loads((build_dir / "stamps" / "A.json").read_text())
    assert list(stamp["outputs"]) == ["out/a.txt"]  # relative to the build folder
    moved = tmp_path / "elsewhere" / "other"
    moved.parent.mkdir()
    subprocess.run(["cp", "-a", str(build_dir), str(moved)], check=True)
    shutil.rmtree(build_dir)
    monkeypatch.setenv("EDGEDIGIT_BUILD", str(moved))
    assert _lines(_stages(calls)) == ["A: skipped", "B: skipped"] and calls == ["A", "B"]
    (moved / "out" / "b.txt").unlink()  # a missing output is never up to date
    assert _lines(_stages(calls)) == ["A: skipped", "B: ran"]


def test_incomplete_outputs_are_never_up_to_date(build_dir):
    build_dir.mkdir()
    (build_dir / "in.txt").write_text("x")
    calls, state = [], {"why": None}
    _lines(_stages(calls, complete=lambda: state["why"]))
    state["why"] = "out/b.jsonl holds 255 of the 1000 samples b.json counts"
    with pytest.raises(Exception, match="pipeline stage 'B' ran but its outputs are incomplete: out/b.jsonl holds 255"):
        _lines(_stages(calls, complete=lambda: state["why"]))  # not up to date: it runs, and still incomplete
    assert calls == ["A", "B", "B"]
    state["why"] = None
    assert _lines(_stages(calls, complete=lambda: state["why"])) == ["A: skipped", "B: ran"]
    assert _lines(_stages(calls, complete=lambda: state["why"])) == ["A: skipped", "B: skipped"]


def test_device_stage_is_stale_when_its_jsonl_is_short(build_dir, monkeypatch):
    """The bench device stage declares its JSONL and its completeness (``ResultFile.incomplete``)."""
    from types import SimpleNamespace

    import edgedigit.measure.bench_device as bd
    from edgedigit.targets.boards import load_board

    board = load_board("host")
    project = build_dir / "firmware" / "host" / "mlp-native"
    project.mkdir(parents=True)
    (project / "edgedigit.lock.json").write_text("{}")
    model = build_dir / "models" / "mlp" / "model_int8.tflite"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"int8")
    ds = SimpleNamespace(sha256="d" * 64)
    runs = []

    def fake(board_id, variant, **kw):
        runs.append(kw["samples"])
        _session(ResultFile(f"device-{board_id}-{variant}"), kw["samples"])

    monkeypatch.setattr(bd, "bench_device", fake)
    stage = bd.stage(board, SimpleNamespace(name="mlp", kind="neural"), project, 20, None, lambda: ds)
    assert _lines([stage]) == ["bench device host mlp: ran"]
    assert _lines([stage]) == ["bench device host mlp: skipped"]
    results = ResultFile("device-host-mlp")
    results.jsonl.write_text("\n".join(results.jsonl.read_text().splitlines()[:8]) + "\n")
    assert _lines([stage]) == ["bench device host mlp: ran"] and runs == [20, 20]


# ---- a killed run leaves no firmware running --------------------------------------------------------------


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")  # a zombie no one reaps is dead all the same


def test_the_host_firmware_dies_with_a_killed_run(tmp_path):
    from conftest import require_tool
    from helpers import assemble

    require_tool("cc")
    require_tool("setpriv")
    from edgedigit.targets import devices

    project = assemble(tmp_path / "proj", "host")
    devices.make(project)
    child = _python(f"""
import time
from pathlib import Path
from edgedigit.targets import devices
from edgedigit.targets.boards import load_board
with devices.start(Path({str(project)!r}), load_board('host')) as running:
    print(running.process.pid, flush=True)
    time.sleep(60)
""", tmp_path / "build")
    try:
        firmware = int(child.stdout.readline())
        assert not _gone(firmware)
    finally:
        child.send_signal(signal.SIGKILL)  # no finally runs in the child: only the kernel can stop the firmware
        child.wait()
    for _ in range(100):
        if _gone(firmware):
            break
        import time

        time.sleep(0.05)
    assert _gone(firmware)


def test_a_compiler_that_cannot_write_is_a_refused_write(tmp_path, monkeypatch):
    from edgedigit.targets import devices

    def full(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 2, stdout="cc -c src/a.c -o build/a.o\n",
                                           stderr="Fatal error: can't write 3887 bytes to section .rodata of "
                                                  "build/a.o: 'No space left on device'\nmake: *** Error 1\n")

    monkeypatch.setattr(devices.subprocess, "run", full)
    with pytest.raises(OSError) as e:
        devices.make(tmp_path)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "build")
