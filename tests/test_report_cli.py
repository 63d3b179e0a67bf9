"""bench host, bench stress and report through the CLI on really trained (slice) models."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from edgedigit.cli import app
from edgedigit.core.results import read_jsonl

pytestmark = pytest.mark.mnist


def _invoke(args):
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return res.output


def test_bench_host_stress_and_report(trained_build, mnist_small, monkeypatch, tmp_path):
    data = tmp_path / "small.npz"
    import numpy as np

    np.savez(data, x_train=mnist_small.x_train, y_train=mnist_small.y_train, x_test=mnist_small.x_test[:200],
             y_test=mnist_small.y_test[:200])
    monkeypatch.setenv("EDGEDIGIT_DATA", str(data))

    out = _invoke(["bench", "host", "mlp", "--runs", "5", "--warmup", "2", "--batch", "10", "--json"])
    summary = json.loads(out[out.index("{"):])
    by_rt = {r["runtime"]: r for r in summary["results"]}
    assert sorted(by_rt) == ["keras", "litert", "native", "tflm"]
    for r in by_rt.values():
        assert r["status"] == "ok" and r["n_test"] == 200 and r["runs"] == 5 and len(r["latency_samples_us"]) == 5
        assert 0.5 < r["accuracy"] <= 1.0
        assert r["latency_us"]["min"] <= r["latency_us"]["median"] <= r["latency_us"]["p99"] <= r["latency_us"]["max"]
        assert r["rss_mb"]["peak"] >= max(r["rss_mb"]["before"], r["rss_mb"]["after"])
        assert sum(map(sum, r["confusion"])) == 200
        assert r["machine"]["cores_logical"] >= 1 and r["dataset"]["test"] == 200
    # TFLM and the native C compute the same int8 outputs: the same predictions, so the same confusion matrix
    assert by_rt["tflm"]["predictions_sha256"] == by_rt["native"]["predictions_sha256"]
    assert len(read_jsonl(trained_build / "results" / "bench-host.jsonl")) == 4

    out = _invoke(["bench", "stress", "mlp", "--runtime", "tflm", "--runtime", "native",
                   "--iterations", "6", "--batch", "5", "--warmup", "1", "--json"])
    summary = json.loads(out[out.index("{"):])
    assert [(r["runtime"], r["iterations"], r["errors"]) for r in summary["results"]] == [
        ("tflm", 6, 0), ("native", 6, 0)]
    assert all(r["verdict"] in ("stable", "unstable") for r in summary["results"])
    lines = read_jsonl(trained_build / "results" / "stress.jsonl")
    assert len(lines) == 2 and len(lines[0]["iteration_ms"]) == 6  # raw timings kept in the .jsonl

    out = _invoke(["report", "--board", "qemu-m4"])
    md = (trained_build / "reports" / "report.md").read_text()
    assert "mnist test (200)" in md and "| qemu-m4 | **" in md
    assert "missing (`edgedigit bench device --board qemu-m4`)" in md  # not measured here
    assert "missing (`edgedigit bench stress mlp-pruned`)" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert "latency.png" in links and "accuracy_vs_size.png" in links
    for name in links:
        assert (trained_build / "reports" / name).read_bytes()[:4] == b"\x89PNG"


def test_bench_host_untrained_variant_is_one_line(build_dir, mnist):
    res = CliRunner().invoke(app, ["bench", "host", "mlp"])
    assert res.exit_code == 1
    assert res.output.count("\n") == 1
    assert "variant 'mlp' is not trained" in res.output and "edgedigit train mlp" in res.output


def test_bench_stress_bad_data_file_is_one_line(build_dir, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    res = CliRunner().invoke(app, ["bench", "stress", "--data", str(bad)])
    assert res.exit_code == 1 and res.output.count("\n") == 1 and str(bad) in res.output
