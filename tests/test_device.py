"""``edgedigit bench device`` end to end on the boards without hardware, on a model trained on real MNIST:
export + build + start, handshake, latency, on-device accuracy, raw outputs equal to TFLM; a device
killed mid-run; ``--resume``; a wrong model refused; the qemu firmware links no heap."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import require_tool
from edgedigit.cli import app
from edgedigit.core.errors import DeviceError

pytestmark = [pytest.mark.slow, pytest.mark.tool, pytest.mark.mnist]


def _invoke(args):
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return res.output


def _jsonl(path):
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def test_bench_device_host(trained_build):
    require_tool("cc")
    out = _invoke(["bench", "device", "--board", "host", "--variant", "mlp", "--samples", "30"])
    assert "latency over 30 inferences after warm-up" in out
    assert "raw outputs identical to TFLM: 30/30 images, 300/300 elements" in out
    assert "on-device accuracy:" in out and "mnist test set" in out
    summary = json.loads((trained_build / "results" / "device-host-mlp.json").read_text())
    recs = [r for r in _jsonl(trained_build / "results" / "device-host-mlp.jsonl") if r["type"] == "sample"]
    assert [r["index"] for r in recs] == list(range(30))
    assert all(r["raw"] == r["tflm"] for r in recs)
    assert summary["accuracy"] == sum(r["predicted"] == r["label"] for r in recs) / 30
    assert summary["accuracy"] > 0.5  # a trained model, not chance
    assert summary["counter_unit"] == "ns" and summary["latency_counter"]["n"] == 30


def test_bench_device_qemu_json(trained_build):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    out = _invoke(["bench", "device", "--board", "qemu-m4", "--variant", "mlp", "--samples", "20", "--json"])
    s = json.loads(out[out.index("{"):])
    assert s["agreement"]["images_identical"] == 20 and s["agreement"]["elements_identical"] == 200
    assert s["counter_unit"] == "instructions"
    assert s["counter_note"] == "emulated instructions, not cycles of a real chip"
    assert s["firmware"]["heap_symbols"] == []
    assert 0 < s["firmware"]["size"]["flash"] <= 4 * 1024 * 1024
    lat = s["latency_counter"]
    assert lat["min"] > 0 and lat["min"] <= lat["median"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert s["counter_per_mac"] == pytest.approx(lat["median"] / s["macs"])


def test_qemu_table_says_emulated(trained_build):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    out = _invoke(["bench", "device", "--board", "qemu-m4", "--samples", "3"])
    assert "not cycles of a real chip" in " ".join(out.split())


def test_killed_device_keeps_results_and_resume_finishes(trained_build):
    require_tool("cc")
    from edgedigit.measure.bench_device import bench_device

    def pull_the_plug(done, running):
        if done == 7:
            running.kill()

    with pytest.raises(DeviceError) as err:
        bench_device("host", "mlp", samples=25, progress=False, log=lambda m: None, on_sample=pull_the_plug)
    msg = str(err.value)
    path = trained_build / "results" / "device-host-mlp.jsonl"
    partial = path.with_name(path.name + ".partial")
    assert "vanished" in msg and f"7 of 25 results are saved in {partial}" in msg and "--resume" in msg
    assert [r["index"] for r in _jsonl(partial) if r["type"] == "sample"] == list(range(7))
    assert not path.exists()  # the partial run is not a result

    out = _invoke(["bench", "device", "--board", "host", "--samples", "25", "--resume"])
    assert "resuming: 7 of 25 samples already in" in out
    assert "raw outputs identical to TFLM: 25/25 images" in out
    recs = [r for r in _jsonl(path) if r["type"] == "sample"]
    assert sorted(r["index"] for r in recs) == list(range(25))  # each image exactly once
    assert sum(1 for r in _jsonl(path) if r["type"] == "session") == 2
    assert not partial.exists()


def test_interrupted_run_keeps_the_complete_earlier_result(trained_build):
    """Issue 15: a new run writes beside a complete result and replaces it only when it is complete."""
    require_tool("cc")
    from edgedigit.core.results import ResultFile
    from edgedigit.measure.bench_device import bench_device

    _invoke(["bench", "device", "--board", "host", "--samples", "12"])
    results = ResultFile("device-host-mlp")
    old_jsonl, old_summary = results.jsonl.read_bytes(), results.summary_path.read_bytes()
    assert results.incomplete() is None

    def interrupt(done, running):
        if done == 5:
            raise KeyboardInterrupt

    said = []
    with pytest.raises(KeyboardInterrupt):
        bench_device("host", "mlp", samples=12, progress=False, log=said.append, on_sample=interrupt)
    assert results.jsonl.read_bytes() == old_jsonl and results.summary_path.read_bytes() == old_summary
    assert results.incomplete() is None  # the earlier result is still complete and consistent
    assert said[-1] == (f"interrupted: 5 of 12 results are saved in {results.partial}; the complete earlier "
                        f"result in {results.jsonl} is kept; run the same command with --resume to finish")
    assert [r["index"] for r in _jsonl(results.partial) if r["type"] == "sample"] == list(range(5))

    _invoke(["bench", "device", "--board", "host", "--samples", "12", "--resume"])
    new = _jsonl(results.jsonl)
    assert [r["index"] for r in new if r["type"] == "sample"] == list(range(12)) and not results.partial.exists()
    summary = json.loads(results.summary_path.read_text())
    assert summary["session"] == new[0]["session"] != json.loads(old_jsonl.splitlines()[0])["session"]
    assert results.incomplete() is None


def test_wrong_model_on_device_is_refused(trained_build):
    require_tool("cc")
    from edgedigit.measure import bench_device as bd

    bd.bench_device("host", "mlp", samples=2, progress=False, log=lambda m: None)  # exports + builds mlp
    # now the host's model changes (retrained): the firmware built from the old one must be refused
    model = trained_build / "models" / "mlp" / "model_int8.tflite"
    old_sha = bd._read_results(trained_build / "results" / "device-host-mlp.jsonl")[0]["model_sha256"]
    model.write_bytes((trained_build / "models" / "mlp-pruned" / "model_int8.tflite").read_bytes())

    def stale_export(board, variant, backend, kernels=None):
        return trained_build / "firmware" / board.id / f"{variant}-{backend}"

    original = bd.export_project
    bd.export_project = stale_export
    try:
        res = CliRunner().invoke(app, ["bench", "device", "--board", "host", "--samples", "2"])
    finally:
        bd.export_project = original
    assert res.exit_code == 1
    assert f"the device runs model {old_sha}, but {model} is" in res.output
    assert "port /dev/pts/" in res.output


def test_resume_refuses_another_model(trained_build):
    require_tool("cc")
    _invoke(["bench", "device", "--board", "host", "--samples", "2"])
    model = trained_build / "models" / "mlp" / "model_int8.tflite"
    model.write_bytes((trained_build / "models" / "mlp-pruned" / "model_int8.tflite").read_bytes())
    res = CliRunner().invoke(app, ["bench", "device", "--board", "host", "--samples", "2", "--resume"])
    assert res.exit_code == 1
    assert "device-host-mlp.jsonl: was recorded with model" in res.output and "without --resume" in res.output


def test_real_board_port_that_does_not_exist(trained_build):
    res = CliRunner().invoke(app, ["bench", "device", "--board", "esp32dev", "--port", "/dev/ttyNOPE9",
                                   "--samples", "1"])
    assert res.exit_code == 1
    assert "cannot open port /dev/ttyNOPE9" in res.output


def test_port_option_talks_to_a_running_firmware(trained_build):
    """The real-board path (--port): nothing is built or started, the given port is opened and checked."""
    require_tool("cc")
    from edgedigit.targets import devices
    from edgedigit.targets.boards import load_board
    from edgedigit.targets.export import export

    project = export("host", variant="mlp", backend="native").path
    devices.make(project)
    with devices.start(project, load_board("host")) as running:
        out = _invoke(["bench", "device", "--board", "host", "--port", running.url, "--samples", "5"])
    assert "raw outputs identical to TFLM: 5/5 images" in out
    s = json.loads((trained_build / "results" / "device-host-mlp.json").read_text())
    assert s["firmware"] == {} and s["samples"] == 5
    header = _jsonl(trained_build / "results" / "device-host-mlp.jsonl")[0]
    assert header["type"] == "session" and header["port"] == running.url


def test_project_option_runs_the_exported_project_without_exporting_again(trained_build, monkeypatch):
    """--project: the given project is built and started as it is (the pipeline's export is not redone)."""
    require_tool("cc")
    import edgedigit.measure.bench_device as bd
    from edgedigit.targets.export import export

    project = export("host", variant="mlp", backend="native").path

    def no_export(*args):
        raise AssertionError("bench device --project exported again")

    monkeypatch.setattr(bd, "export_project", no_export)
    out = _invoke(["bench", "device", "--board", "host", "--project", str(project), "--samples", "5"])
    assert "raw outputs identical to TFLM: 5/5 images" in out
    s = json.loads((trained_build / "results" / "device-host-mlp.json").read_text())
    assert s["firmware"]["project"] == str(project) and s["samples"] == 5
