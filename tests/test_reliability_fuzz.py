"""The protocol fuzzer (tests/fuzz/fuzz_protocol.c): libFuzzer + ASan + UBSan on the device-side parser.

The seed sessions must give the answers a host expects, a short fuzz run must end clean, and the harness
must be able to fail (a bug injected into the stand-in runner is reported by the sanitizer). The long run
is ``benchmarks/fuzz_protocol.sh``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, require_tool
from fuzz.make_corpus import sessions

FUZZ = REPO / "tests" / "fuzz"
FLAGS = ["-g", "-O1", "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsanitize=fuzzer,address,undefined",
         "-fno-sanitize-recover=all", f"-I{REPO / 'firmware_templates' / 'runtime'}"]

pytestmark = [pytest.mark.tool]


def _build(out: Path, *defines: str) -> Path:
    clang = require_tool("clang")
    subprocess.run([clang, *FLAGS, *(f"-D{d}" for d in defines), str(FUZZ / "fuzz_protocol.c"), "-o", str(out)],
                   check=True, capture_output=True, text=True)
    return out


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    return {"fuzz": _build(d / "fuzz"), "echo": _build(d / "echo", "EDGEDIGIT_FUZZ_ECHO"),
            "bug": _build(d / "bug", "EDGEDIGIT_FUZZ_INJECT_BUG")}


def _replay(binary: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), str(FUZZ / "corpus" / name)], capture_output=True, text=True,
                          errors="replace", timeout=60)


def _device_lines(output: str) -> list[str]:
    return [ln for ln in output.replace("\r\n", "\n").split("\n") if re.match(r"^[me]-", ln)]


def test_corpus_is_what_make_corpus_writes():
    on_disk = {p.name: p.read_bytes() for p in (FUZZ / "corpus").iterdir()}
    assert on_disk == sessions()


def test_valid_sessions_get_the_expected_answers(binaries):
    lines = _device_lines(_replay(binaries["echo"], "db_infer").stderr)
    assert lines[:2] == ["m-[Expecting 784 bytes]", "m-ready"]  # nothing at boot: the first line answers db load
    assert "m-load-done" in lines
    assert lines.count("m-infer-done") == 1
    assert sum(ln.startswith("m-results-[") for ln in lines) == 2  # infer, then results%
    assert lines.count("m-ready") == FUZZ.joinpath("corpus", "db_infer").read_bytes().count(b"%")
    assert len([ln for ln in lines if ln.startswith("m-buffer-")]) == 3  # db print 20 5: 8 + 8 + 4 bytes
    assert not [ln for ln in lines if ln.startswith("e-")]

    lines = _device_lines(_replay(binaries["echo"], "bad_hex").stderr)
    errors = [ln for ln in lines if ln.startswith("e-")]
    assert "e-[non-hex character near offset 0; frame ignored]" in errors
    assert "e-[data ends inside a byte at offset 2 (odd number of hex digits); frame ignored]" in errors
    assert "e-[data overruns the load of 4 bytes; frame ignored]" in errors
    assert "m-load-done" in lines  # the good frame after three bad ones still loads

    slow = _device_lines(_replay(binaries["echo"], "slow_sender").stderr)
    assert "m-name-dut-[edgedigit fuzz]" in slow and "m-ed-echo-[slow]" in slow
    cut = _device_lines(_replay(binaries["echo"], "cut_frames").stderr)
    assert cut == ["m-ready"]  # every partial frame dropped; '%' still answered


def test_every_seed_session_runs_clean(binaries):
    names = sorted(sessions())
    done = subprocess.run([str(binaries["fuzz"]), *(str(FUZZ / "corpus" / n) for n in names)],
                          capture_output=True, text=True, errors="replace", timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("Executed ") == len(names)


def test_short_fuzz_run_is_clean(binaries, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(FUZZ / "corpus", corpus)
    done = subprocess.run([str(binaries["fuzz"]), "-max_total_time=20", "-print_final_stats=1",
                           f"-dict={FUZZ / 'protocol.dict'}", f"-artifact_prefix={tmp_path}/", str(corpus)],
                          capture_output=True, text=True, errors="replace", timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ERROR:" not in done.stderr and "runtime error" not in done.stderr
    execs = int(re.search(r"stat::number_of_executed_units: (\d+)", done.stderr).group(1))
    assert execs > 1000  # the run really fuzzed, it did not stop at the seeds
    assert not list(tmp_path.glob("crash-*"))


def test_harness_reports_an_injected_overread(binaries):
    done = _replay(binaries["bug"], "db_infer")
    assert done.returncode != 0
    assert "AddressSanitizer: global-buffer-overflow" in done.stderr
    assert "edgedigit_model_invoke" in done.stderr
