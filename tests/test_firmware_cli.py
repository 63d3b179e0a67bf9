"""`edgedigit boards / export / build / flash` through CliRunner, with `pio` replaced at subprocess.run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgedigit.cli import app
from edgedigit.targets import pio
from helpers import TINY, add_variant

runner = CliRunner()


def invoke(args):
    result = runner.invoke(app, args)
    print(result.output)  # shown when a test fails
    return result


class FakeRun:
    """Stands in for subprocess.run in edgedigit.targets.pio: records (cmd, cwd), answers from a script."""

    def __init__(self, answers=None):
        self.calls: list[tuple[list[str], Path | None]] = []
        self.answers = answers or {}

    def __call__(self, cmd, cwd=None, capture_output=False, text=False, check=False):
        self.calls.append((list(cmd), Path(cwd) if cwd else None))
        key = " ".join(cmd[1:])
        rc, out = self.answers.get(key, (0, ""))
        return subprocess.CompletedProcess(cmd, rc, stdout=out, stderr="")


@pytest.fixture
def fake_run(monkeypatch):
    fake = FakeRun()
    monkeypatch.setattr(pio.subprocess, "run", fake)
    return fake


@pytest.fixture
def small_build(build_dir):
    add_variant(build_dir, "tiny", "neural", 0.5, TINY)
    add_variant(build_dir, "rfe-lr", "linear", 0.8)
    return build_dir


def test_boards_json_lists_every_board_with_budgets():
    result = invoke(["boards", "--json"])
    assert result.exit_code == 0
    boards = {b["id"]: b for b in json.loads(result.output)}
    assert set(boards) == {"esp32dev", "esp32-s3", "nano33ble", "uno", "host", "qemu-m4"}
    assert boards["uno"]["flash_bytes"] == 32_256 and boards["uno"]["ram_bytes"] == 2_048
    assert boards["esp32dev"]["aliases"] == ["esp32"]
    assert boards["nano33ble"]["tflm"]["per_channel_fully_connected"] is False


def test_boards_table():
    result = invoke(["boards"])
    assert result.exit_code == 0
    assert "esp32dev" in result.output and "32,256" in result.output and "2,048" in result.output


def test_export_command(small_build):
    result = invoke(["export", "--board", "esp32", "--variant", "tiny"])
    assert result.exit_code == 0
    assert f"exported tiny (tflm) for esp32dev -> {small_build / 'firmware' / 'esp32dev' / 'tiny-tflm'}" in result.output
    assert "B measured +" in result.output
    result = invoke(["export", "--board", "uno", "--json"])
    summary = json.loads(result.output)
    assert (summary["variant"], summary["backend"]) == ("rfe-lr", "linear")
    assert "src/edgedigit_lr_model.h" in summary["files"]


def test_export_errors_are_one_red_line(small_build, tflite_models):
    add_variant(small_build, "big", "neural", 0.99, tflite_models["mlp"])
    result = invoke(["export", "--board", "uno", "--variant", "big"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: big (native): ")
    assert "> uno's 32,256 B flash" in lines[0] and lines[0].endswith("fits: rfe-lr, tiny")
    result = invoke(["export", "--board", "nope", "--variant", "tiny"])
    assert result.exit_code == 1 and "unknown board 'nope'" in result.output
    result = invoke(["export", "--board", "esp32", "--variant", "tiny", "--model", str(TINY)])
    assert result.exit_code == 1 and "not both" in result.output


def test_build_runs_pio_run_in_the_project(small_build, fake_run):
    result = invoke(["build", "--board", "esp32", "--variant", "tiny"])
    assert result.exit_code == 0
    project = small_build / "firmware" / "esp32dev" / "tiny-tflm"
    assert fake_run.calls == [([pio.find_pio(), "run"], project)]
    assert (project / "platformio.ini").is_file()  # exported first, since it did not exist
    # a second build reuses the export (keeps PlatformIO's .pio cache)
    (project / ".pio").mkdir()
    result = invoke(["build", "--board", "esp32", "--variant", "tiny"])
    assert result.exit_code == 0 and f"project {project}" in result.output
    assert (project / ".pio").is_dir()
    assert fake_run.calls[-1] == ([pio.find_pio(), "run"], project)


def test_build_picks_the_variants_own_export(small_build, fake_run):
    """`mlp-pruned-native` is not an export of `mlp`; two exports of one variant need --backend."""
    add_variant(small_build, "tiny-x", "neural", 0.4, TINY)
    assert invoke(["export", "--board", "esp32", "--variant", "tiny-x", "--backend", "native"]).exit_code == 0
    result = invoke(["build", "--board", "esp32", "--variant", "tiny"])
    assert result.exit_code == 0
    assert fake_run.calls[-1][1] == small_build / "firmware" / "esp32dev" / "tiny-tflm"
    assert invoke(["export", "--board", "esp32", "--variant", "tiny", "--backend", "native"]).exit_code == 0
    result = invoke(["build", "--board", "esp32", "--variant", "tiny"])
    assert result.exit_code == 1 and "several exports of tiny for esp32dev (tiny-tflm, tiny-native): pass --backend" \
        in result.output
    result = invoke(["build", "--board", "esp32", "--variant", "tiny", "--backend", "native"])
    assert result.exit_code == 0
    assert fake_run.calls[-1][1] == small_build / "firmware" / "esp32dev" / "tiny-native"


def test_build_for_make_boards_runs_make(small_build, fake_run):
    result = invoke(["build", "--board", "host", "--variant", "rfe-lr"])
    assert result.exit_code == 0
    assert fake_run.calls == [(["make"], small_build / "firmware" / "host" / "rfe-lr-linear")]


def test_build_reports_unreachable_registry(small_build, fake_run):
    fake_run.answers["run"] = (1, "Platform Manager: Installing ...\nHTTPClientError: \n")
    result = invoke(["build", "--board", "esp32", "--variant", "tiny"])
    assert result.exit_code == 1
    assert "the PlatformIO registry cannot be reached (HTTPClientError)" in result.output


def test_build_reports_a_failed_build_with_its_last_lines(small_build, fake_run):
    fake_run.answers["run"] = (1, "Compiling...\nsrc/x.c:1: error: boom\n*** [x.o] Error 1\n")
    result = invoke(["build", "--board", "esp32", "--variant", "tiny"])
    assert result.exit_code == 1
    assert "failed (exit 1): Compiling... | src/x.c:1: error: boom | *** [x.o] Error 1" in result.output


def test_missing_platformio(small_build, monkeypatch, tmp_path):
    monkeypatch.setattr(pio.shutil, "which", lambda name: None)
    monkeypatch.setattr(pio.sys, "executable", str(tmp_path / "python"))
    result = invoke(["build", "--board", "esp32", "--variant", "tiny"])
    assert result.exit_code == 1
    assert "PlatformIO (pio) is not installed: `pip install platformio`" in result.output


def test_flash_with_port(small_build, fake_run):
    result = invoke(["flash", "--board", "esp32", "--variant", "tiny", "--port", "/dev/ttyUSB7"])
    assert result.exit_code == 0
    project = small_build / "firmware" / "esp32dev" / "tiny-tflm"
    assert fake_run.calls == [([pio.find_pio(), "run", "-t", "upload", "--upload-port", "/dev/ttyUSB7"], project)]
    assert "flashed" in result.output and "/dev/ttyUSB7" in result.output


def test_flash_finds_the_port_by_usb_id(small_build, fake_run):
    ports = [{"port": "/dev/ttyS0", "description": "n/a", "hwid": "n/a"},
             {"port": "/dev/ttyUSB0", "description": "CP2102", "hwid": "USB VID:PID=10C4:EA60 SER=0001 LOCATION=1-1"}]
    fake_run.answers["device list --json-output"] = (0, json.dumps(ports))
    result = invoke(["flash", "--board", "esp32", "--variant", "tiny"])
    assert result.exit_code == 0
    assert [c for c, _ in fake_run.calls] == [
        [pio.find_pio(), "device", "list", "--json-output"],
        [pio.find_pio(), "run", "-t", "upload", "--upload-port", "/dev/ttyUSB0"]]


def test_flash_without_any_port(small_build, fake_run):
    fake_run.answers["device list --json-output"] = (0, "[]")
    result = invoke(["flash", "--board", "esp32", "--variant", "tiny"])
    assert result.exit_code == 1
    assert "no serial port found for esp32dev" in result.output
    assert len(fake_run.calls) == 1  # nothing uploaded


def test_flash_with_only_foreign_ports(small_build, fake_run):
    ports = [{"port": "/dev/ttyACM0", "hwid": "USB VID:PID=2341:005A"}]
    fake_run.answers["device list --json-output"] = (0, json.dumps(ports))
    result = invoke(["flash", "--board", "esp32", "--variant", "tiny"])
    assert result.exit_code == 1
    assert "no serial port with a USB id of esp32dev" in result.output and "/dev/ttyACM0 (2341:005A)" in result.output


def test_flash_upload_failure(small_build, fake_run):
    fake_run.answers["run -t upload --upload-port /dev/ttyUSB0"] = (1, "A fatal error occurred: Failed to connect to ESP32")
    result = invoke(["flash", "--board", "esp32", "--variant", "tiny", "--port", "/dev/ttyUSB0"])
    assert result.exit_code == 1
    assert "failed (exit 1): A fatal error occurred: Failed to connect to ESP32" in result.output


def test_flash_refuses_boards_that_run_here(small_build, fake_run):
    result = invoke(["flash", "--board", "qemu-m4", "--variant", "rfe-lr"])
    assert result.exit_code == 1
    assert "board qemu-m4 is not flashed" in result.output and "edgedigit bench device --board qemu-m4" in result.output
    assert fake_run.calls == []


# ---- issue 15: the project is checked against its lock file, and the board's tools, before anything builds


def _exported(build_dir, board="host", variant="rfe-lr", backend="linear"):
    assert invoke(["export", "--board", board, "--variant", variant]).exit_code == 0
    return build_dir / "firmware" / board / f"{variant}-{backend}"


def test_build_refuses_an_edited_generated_file_naming_it(small_build, fake_run):
    project = _exported(small_build)
    model = project / "src" / "edgedigit_lr_model.h"
    model.write_text(model.read_text().replace("{", "{ 1,", 1))  # one weight more, by hand
    result = invoke(["build", "--board", "host", "--variant", "rfe-lr"])
    assert result.exit_code == 1 and fake_run.calls == []  # make never ran
    lines = result.output.splitlines()
    assert lines[-1].startswith(f"error: {model}: modified since export (sha256 ") and len(lines) == 3  # project, building
    assert "edgedigit.lock.json); export it again (`edgedigit export --board host`) or pass --force" in lines[-1]
    assert not (small_build / "results" / "builds.jsonl").exists()


def test_build_refuses_a_missing_or_added_file(small_build, fake_run):
    project = _exported(small_build)
    (project / "src" / "extra.c").write_text("int extra;\n")
    result = invoke(["build", "--board", "host", "--project", str(project)])
    assert result.exit_code == 1
    assert f"error: {project / 'src' / 'extra.c'}: added since export (not in edgedigit.lock.json)" in result.output
    (project / "src" / "extra.c").unlink()
    (project / "Makefile").unlink()
    (project / "README.md").unlink()
    (project / "Makefile").write_text("all:\n")
    result = invoke(["build", "--board", "host", "--project", str(project)])
    assert result.exit_code == 1 and fake_run.calls == []
    assert f"error: {project / 'Makefile'}: modified since export" in result.output and "(and 1 more)" in result.output
    shutil_project = project.parent / "not-exported"
    shutil_project.mkdir()
    (shutil_project / "Makefile").write_text("all:\n")
    result = invoke(["build", "--board", "host", "--project", str(shutil_project)])
    assert result.exit_code == 1 and "not an exported firmware project (no edgedigit.lock.json)" in result.output


def test_build_force_builds_anyway_and_says_so(small_build, fake_run):
    project = _exported(small_build)
    model = project / "src" / "edgedigit_lr_model.h"
    model.write_text(model.read_text() + "\n/* edited */\n")
    result = invoke(["build", "--board", "host", "--variant", "rfe-lr", "--force"])
    assert result.exit_code == 0 and fake_run.calls == [(["make"], project)]
    assert f"warning: --force: building a project that is not the exported one: {model}: modified" in result.output
    builds = small_build / "results" / "builds.jsonl"
    assert f"built {project} (--force: 1 file(s) differ from its edgedigit.lock.json; recorded in {builds})" \
        in result.output
    rec = json.loads(builds.read_text().splitlines()[-1])
    assert rec["command"] == "build" and rec["lock"] == "forced" and rec["board"] == "host"
    assert rec["project"] == "firmware/host/rfe-lr-linear" and rec["changes"][0].startswith(f"{model}: modified")
    model.write_text(model.read_text().replace("\n/* edited */\n", ""))  # back as exported: verified again
    assert invoke(["build", "--board", "host", "--variant", "rfe-lr"]).exit_code == 0
    assert json.loads(builds.read_text().splitlines()[-1])["lock"] == "verified"


def test_flash_refuses_an_edited_file_too(small_build, fake_run):
    project = _exported(small_build, "esp32", "tiny", "tflm").with_name("tiny-tflm").parent.parent / "esp32dev" / "tiny-tflm"
    data = project / "src" / "edgedigit_model_data.cc"
    data.write_text(data.read_text().replace("0x", "0x1", 1))
    result = invoke(["flash", "--board", "esp32", "--variant", "tiny", "--port", "/dev/ttyUSB0"])
    assert result.exit_code == 1 and fake_run.calls == []
    assert f"error: {data}: modified since export" in result.output
    result = invoke(["flash", "--board", "esp32", "--variant", "tiny", "--port", "/dev/ttyUSB0", "--force"])
    assert result.exit_code == 0 and "(--force: 1 file(s) differ" in result.output


@pytest.mark.parametrize("board, tool, package", [("qemu-m4", "arm-none-eabi-gcc", "gcc-arm-none-eabi"),
                                                  ("host", "make", "make")])
def test_a_missing_compiler_is_named_before_make_runs(small_build, fake_run, monkeypatch, board, tool, package):
    import shutil

    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == tool else real(name, *a, **k))
    result = invoke(["build", "--board", board, "--variant", "rfe-lr"])
    assert result.exit_code == 1 and fake_run.calls == []
    assert result.output.splitlines()[-1] == (f"error: {tool} is not installed: board {board} builds with it; "
                                              f"Debian: apt-get install {package}")
