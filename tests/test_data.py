"""The data stage: loading .npz and IDX folders, every check on bad input, resolution order, fallback."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct

import numpy as np
import pytest
from typer.testing import CliRunner

from edgedigit.cli import app
from edgedigit.core.errors import DatasetError
from edgedigit.models.data import FALLBACK_NAME, load_dataset, resolve_source


def _arrays(n_train=60, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": rng.integers(0, 10, n_test).astype(np.uint8)}


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _idx(arr: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def _idx_folder(folder, a, gz=False):
    folder.mkdir()
    for key, stem, magic in (("x_train", "train-images-idx3-ubyte", 2051), ("y_train", "train-labels-idx1-ubyte", 2049),
                             ("x_test", "t10k-images-idx3-ubyte", 2051), ("y_test", "t10k-labels-idx1-ubyte", 2049)):
        raw = _idx(a[key], magic)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return folder


def test_npz_loads_with_shapes_hash_and_description(tmp_path):
    a = _arrays()
    p = _npz(tmp_path / "m.npz", **a)
    ds = load_dataset(p)
    assert ds.x_train.shape == (60, 28, 28) and ds.x_test.shape == (20, 28, 28)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_train, a["x_train"])
    np.testing.assert_array_equal(ds.y_test, a["y_test"])
    # the hash is of the decoded arrays: a compressed .npz of the same arrays (other bytes) hashes the same
    packed = tmp_path / "packed.npz"
    np.savez_compressed(packed, **a)
    assert hashlib.sha256(packed.read_bytes()).digest() != hashlib.sha256(p.read_bytes()).digest()
    assert load_dataset(packed).sha256 == ds.sha256 and len(ds.sha256) == 64
    changed = {**a, "x_test": a["x_test"].copy()}
    changed["x_test"][3, 14, 14] ^= 1  # one pixel of one test image
    assert load_dataset(_npz(tmp_path / "changed.npz", **changed)).sha256 != ds.sha256
    relabeled = {**a, "y_train": a["y_train"].copy()}
    relabeled["y_train"][0] = (relabeled["y_train"][0] + 1) % 10
    assert load_dataset(_npz(tmp_path / "relabeled.npz", **relabeled)).sha256 != ds.sha256
    assert ds.describe() == {"name": "mnist", "source": str(p), "sha256": ds.sha256, "train": 60, "test": 20,
                             "fallback": False}
    assert ds.label() == "mnist test (20)"
    sub = ds.subset(10, 5)
    assert (len(sub.y_train), len(sub.y_test)) == (10, 5) and sub.sha256 == ds.sha256


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_equals_npz(tmp_path, gz):
    a = _arrays()
    ds = load_dataset(_idx_folder(tmp_path / "idx", a, gz=gz))
    for key in a:
        np.testing.assert_array_equal(getattr(ds, key), a[key])
    # the same MNIST as IDX files and as .npz is the same dataset to stamps and cards (issue 15)
    assert ds.sha256 == load_dataset(_npz(tmp_path / "m.npz", **a)).sha256
    assert ds.describe()["sha256"] == ds.sha256


def test_integral_float_arrays_are_accepted_as_uint8(tmp_path):
    a = _arrays()
    a["x_train"] = a["x_train"].astype(np.float32)
    a["y_train"] = a["y_train"].astype(np.int64)
    ds = load_dataset(_npz(tmp_path / "f.npz", **a))
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_train, a["x_train"].astype(np.uint8))


def _bad(a, **changes):
    a = dict(a)
    a.update(changes)
    return {k: v for k, v in a.items() if v is not None}


@pytest.mark.parametrize("change, phrase", [
    ({"x_test": None}, "missing array(s) x_test"),
    ({"x_train": np.zeros((60, 28, 27), np.uint8)}, "x_train has shape (60, 28, 27); expected (N, 28, 28)"),
    ({"y_train": np.full(60, 10, np.uint8)}, "labels outside 0..9"),
    ({"y_test": np.zeros(19, np.uint8)}, "y_test has 19 labels but x_test has 20 images"),
    ({"x_train": np.full((60, 28, 28), 0.5, np.float32)}, "values outside integers 0..255"),
    ({"x_train": np.full((60, 28, 28), 300, np.int32)}, "values outside integers 0..255"),
    ({"y_train": np.full(60, np.nan)}, "NaN or infinite labels"),
])
def test_malformed_npz_names_file_and_problem(tmp_path, change, phrase):
    p = _npz(tmp_path / "bad.npz", **_bad(_arrays(), **change))
    with pytest.raises(DatasetError) as e:
        load_dataset(p)
    assert str(p) in str(e.value) and phrase in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("content, phrase", [
    (b"", "the file is empty"),
    (b"hello, not a zip", "not a .npz file"),
])
def test_corrupt_files(tmp_path, content, phrase):
    p = tmp_path / "c.npz"
    p.write_bytes(content)
    with pytest.raises(DatasetError, match=phrase) as e:
        load_dataset(p)
    assert str(p) in str(e.value)


def test_truncated_zip(tmp_path):
    good = _npz(tmp_path / "g.npz", **_arrays())
    p = tmp_path / "t.npz"
    p.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(DatasetError) as e:
        load_dataset(p)
    assert str(p) in str(e.value)


def test_missing_path(tmp_path):
    with pytest.raises(DatasetError, match=r"no such file or folder \(from --data\)"):
        load_dataset(tmp_path / "nope.npz")


def test_bad_idx_files(tmp_path):
    a = _arrays()
    folder = _idx_folder(tmp_path / "idx", a)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx(a["y_test"], 2051))
    with pytest.raises(DatasetError, match="wrong IDX magic number 2051 \\(expected 2049\\)"):
        load_dataset(folder)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx(a["y_test"], 2049)[:-3])
    with pytest.raises(DatasetError, match=r"IDX data is 17 bytes but the header's dims \(20,\) need 20"):
        load_dataset(folder)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz"):
        load_dataset(folder)


def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("EDGEDIGIT_DATA", raising=False)
    assert resolve_source() == ("download", None)
    cache = tmp_path / "keras" / "datasets" / "mnist.npz"
    cache.parent.mkdir(parents=True)
    _npz(cache, **_arrays(seed=1))
    assert resolve_source() == ("keras-cache", cache)
    env = _npz(tmp_path / "env.npz", **_arrays(seed=2))
    monkeypatch.setenv("EDGEDIGIT_DATA", str(env))
    assert resolve_source() == ("EDGEDIGIT_DATA", env)
    explicit = _npz(tmp_path / "explicit.npz", **_arrays(seed=3))
    assert resolve_source(explicit) == ("--data", explicit)
    assert load_dataset(explicit).source == str(explicit)
    assert load_dataset().source == str(env)


def test_fallback_when_nothing_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("EDGEDIGIT_DATA", raising=False)
    ds = load_dataset(download=False)
    assert ds.name == FALLBACK_NAME and ds.fallback
    assert ds.x_train.shape == (1438, 28, 28) and ds.x_test.shape == (359, 28, 28)
    assert ds.label().startswith("FALLBACK ")
    assert ds.x_train[:, :2].max() == 0 and ds.x_train[:, 2:26, 2:26].max() == 255
    assert sorted(set(ds.y_train.tolist())) == list(range(10))


@pytest.mark.mnist
def test_real_mnist(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert np.bincount(mnist.y_test, minlength=10).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # the hash is of the decoded arrays, not of the container (the same data as IDX files hashes the same)
    from edgedigit.models.data import arrays_sha256

    arrays = {"x_train": mnist.x_train, "y_train": mnist.y_train, "x_test": mnist.x_test, "y_test": mnist.y_test}
    assert mnist.sha256 == arrays_sha256(arrays)
    assert mnist.sha256 != hashlib.sha256(open(mnist.source, "rb").read()).hexdigest()


def test_cli_data_json_says_how_it_was_resolved(tmp_path, monkeypatch):
    p = _npz(tmp_path / "m.npz", **_arrays())
    monkeypatch.delenv("EDGEDIGIT_DATA", raising=False)
    r = CliRunner().invoke(app, ["data", "--data", str(p), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["resolved_by"] == "--data" and info["train"] == 60 and info["test"] == 20
    assert info["sha256"] == load_dataset(p).sha256
    monkeypatch.setenv("EDGEDIGIT_DATA", str(p))
    r = CliRunner().invoke(app, ["data", "--json"])
    assert json.loads(r.stdout)["resolved_by"] == "EDGEDIGIT_DATA"
    r = CliRunner().invoke(app, ["data"])
    assert r.exit_code == 0 and "resolved_by" in r.stdout and "60" in r.stdout


def test_cli_data_fallback_is_loud(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("EDGEDIGIT_DATA", raising=False)
    monkeypatch.setattr("edgedigit.models.data._try_download", lambda: None)
    r = CliRunner().invoke(app, ["data", "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["resolved_by"] == "fallback" and info["name"] == FALLBACK_NAME and "NOT MNIST" in info["warning"]
    assert "warning: MNIST not found" in r.stderr


def test_cli_data_corrupt_file_is_one_line(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"garbage")
    r = CliRunner().invoke(app, ["data", "--data", str(p)])
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines() == [f"error: {p}: not a .npz file (not a zip archive); expected a keras-style mnist.npz"]
    assert "Traceback" not in r.output
