"""The dataset stage: find MNIST, load it, check it, and say exactly which data every number comes from.

Resolution order: an explicit path (``--data``), then ``$EDGEDIGIT_DATA``, then the Keras cache
(``~/.keras/datasets/mnist.npz``) or its download. Offline with none of these, the embedded default is
scikit-learn's bundled 8x8 digits upscaled to 28x28: it is announced in every output (``Dataset.fallback``).

A dataset's ``sha256`` hashes the decoded arrays (:func:`arrays_sha256`), not the container: the same
MNIST as a ``.npz``, as four IDX files or as gzipped IDX files is the same dataset to every stamp and card.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import DatasetError

MNIST_NAME = "mnist"
FALLBACK_NAME = "sklearn-digits-28x28"
FALLBACK_WARNING = (
    "MNIST not found (no --data, no EDGEDIGIT_DATA, no Keras cache, no network): using scikit-learn's "
    "bundled 8x8 digits upscaled to 28x28. Accuracy figures are NOT MNIST figures."
)
KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
_IDX_FILES = {
    "x_train": ("train-images-idx3-ubyte", 2051),
    "y_train": ("train-labels-idx1-ubyte", 2049),
    "x_test": ("t10k-images-idx3-ubyte", 2051),
    "y_test": ("t10k-labels-idx1-ubyte", 2049),
}


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 (N, 28, 28), labels as uint8 (N,) in 0..9, plus where they came from."""

    name: str
    source: str
    sha256: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def fallback(self) -> bool:
        return self.name == FALLBACK_NAME

    def describe(self) -> dict:
        """What a card, a result file or a report records about this dataset."""
        return {
            "name": self.name,
            "source": self.source,
            "sha256": self.sha256,
            "train": int(len(self.y_train)),
            "test": int(len(self.y_test)),
            "fallback": self.fallback,
        }

    def label(self) -> str:
        """A short human label for tables and plot titles, e.g. ``mnist test (10,000)``."""
        tag = "FALLBACK " if self.fallback else ""
        return f"{tag}{self.name} test ({len(self.y_test):,})"

    def subset(self, train: int | None = None, test: int | None = None) -> Dataset:
        """The first ``train`` training and ``test`` test examples (for tests and quick runs)."""
        return Dataset(
            self.name,
            self.source,
            self.sha256,
            self.x_train[:train],
            self.y_train[:train],
            self.x_test[:test],
            self.y_test[:test],
        )


def resolve_source(path: str | os.PathLike | None = None) -> tuple[str, Path | None]:
    """Which data would be used, without loading it: ``(how, path)``; path None means the fallback."""
    if path is not None:
        return "--data", Path(path)
    env = os.environ.get("EDGEDIGIT_DATA")
    if env:
        return "EDGEDIGIT_DATA", Path(env)
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
    if cache.is_file():
        return "keras-cache", cache
    return "download", None


def load_dataset(path: str | os.PathLike | None = None, *, download: bool = True) -> Dataset:
    """Load and check the dataset following the resolution order in this module's docstring.

    Args:
        path: a keras-style ``.npz`` or a folder holding the four MNIST IDX files (gzipped or not).
        download: try the Keras download when no local MNIST is found.

    Raises:
        DatasetError: the given file or folder is missing or malformed (the message names it).
    """
    how, p = resolve_source(path)
    if p is not None:
        return _load_path(p, how)
    if download:
        ds = _try_download()
        if ds is not None:
            return ds
    return load_fallback()


def _load_path(p: Path, how: str) -> Dataset:
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder (from {how})")
    arrays = _read_idx_folder(p) if p.is_dir() else _read_npz(p)
    return _checked(MNIST_NAME, str(p), arrays)


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of the checked arrays (uint8): for each of x_train, y_train, x_test, y_test its name, shape
    and bytes, so the hash depends on the data only, not on the file format it came in."""
    h = hashlib.sha256()
    for key in _IDX_FILES:
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{','.join(map(str, a.shape))}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _read_npz(p: Path) -> dict[str, np.ndarray]:
    if p.stat().st_size == 0:
        raise DatasetError(f"{p}: the file is empty")
    if not zipfile.is_zipfile(p):
        raise DatasetError(f"{p}: not a .npz file (not a zip archive); expected a keras-style mnist.npz")
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in _IDX_FILES if k not in z.files]
            if missing:
                raise DatasetError(
                    f"{p}: missing array(s) {', '.join(missing)}; expected x_train, y_train, x_test, y_test "
                    f"(found: {', '.join(z.files) or 'none'})"
                )
            return {k: z[k] for k in _IDX_FILES}
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(f"{p}: not a readable .npz file ({e})") from None


def _read_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for key, (stem, magic) in _IDX_FILES.items():
        candidates = [folder / stem, folder / f"{stem}.gz", folder / stem.replace("-idx", ".idx")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DatasetError(f"{folder}: no {stem} or {stem}.gz in this folder (need the four MNIST IDX files)")
        raw = found.read_bytes()
        if found.suffix == ".gz":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as e:
                raise DatasetError(f"{found}: not a valid gzip file ({e})") from None
        arrays[key] = parse_idx(raw, found, magic)
    return arrays


def parse_idx(raw: bytes, name: Path | str, expected_magic: int) -> np.ndarray:
    """Parse one IDX file (big-endian header: magic, dims; then uint8 data), checking magic and length."""
    if len(raw) < 8:
        raise DatasetError(f"{name}: {len(raw)} bytes is too short for an IDX header")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != expected_magic:
        raise DatasetError(f"{name}: wrong IDX magic number {magic} (expected {expected_magic})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{name}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DatasetError(
            f"{name}: IDX data is {len(raw) - header} bytes but the header's dims {dims} need {expected}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _checked(name: str, source: str, a: dict[str, np.ndarray]) -> Dataset:
    for split in ("train", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        where = f"{source}: x_{split}"
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DatasetError(f"{where} has shape {x.shape}; expected (N, 28, 28)")
        if x.dtype != np.uint8:
            if not np.issubdtype(x.dtype, np.number):
                raise DatasetError(f"{where} has dtype {x.dtype}; expected uint8 pixels 0..255")
            if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
                raise DatasetError(f"{where} contains NaN or infinite values")
            if x.size and (x.min() < 0 or x.max() > 255 or not np.all(np.mod(x, 1) == 0)):
                raise DatasetError(f"{where} has dtype {x.dtype} with values outside integers 0..255")
            x = x.astype(np.uint8)
        ywhere = f"{source}: y_{split}"
        if y.ndim != 1:
            raise DatasetError(f"{ywhere} has shape {y.shape}; expected (N,)")
        if len(y) != len(x):
            raise DatasetError(f"{ywhere} has {len(y)} labels but x_{split} has {len(x)} images")
        if len(y) == 0:
            raise DatasetError(f"{ywhere} is empty")
        if not np.issubdtype(y.dtype, np.integer):
            if np.issubdtype(y.dtype, np.floating) and not np.all(np.isfinite(y)):
                raise DatasetError(f"{ywhere} contains NaN or infinite labels")
            if not (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0)):
                raise DatasetError(f"{ywhere} has dtype {y.dtype}; expected integer labels 0..9")
        if y.min() < 0 or y.max() > 9:
            raise DatasetError(f"{ywhere} has labels outside 0..9 (min {y.min()}, max {y.max()})")
        a[f"x_{split}"], a[f"y_{split}"] = x, y.astype(np.uint8)
    return Dataset(name, source, arrays_sha256(a), a["x_train"], a["y_train"], a["x_test"], a["y_test"])


def _try_download() -> Dataset | None:
    """Fetch MNIST into the Keras cache like ``keras.datasets.mnist.load_data`` would; None when offline."""
    import urllib.request

    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
    try:
        with urllib.request.urlopen(KERAS_MNIST_URL, timeout=10) as r:
            payload = r.read()
    except OSError:
        return None
    from ..core.fsutil import write_atomic

    write_atomic(cache, payload)
    return _load_path(cache, "download")


def load_fallback(seed: int = 0) -> Dataset:
    """scikit-learn's 1,797 bundled 8x8 digits, upscaled to 28x28 uint8, split 80/20 with a fixed seed."""
    from sklearn.datasets import load_digits

    d = load_digits()
    img = (d.images / 16.0 * 255.0).clip(0, 255)  # 8x8 in 0..16 -> 0..255
    # 8x8 -> 24x24 by pixel repetition, centred in 28x28 like MNIST's 20x20 box in 28x28.
    big = np.kron(img, np.ones((3, 3)))
    x = np.zeros((len(img), 28, 28), dtype=np.uint8)
    x[:, 2:26, 2:26] = np.round(big).astype(np.uint8)
    y = d.target.astype(np.uint8)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    n_train = int(round(0.8 * len(y)))
    digest = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    return Dataset(FALLBACK_NAME, "sklearn.datasets.load_digits", digest, x[:n_train], y[:n_train],
                   x[n_train:], y[n_train:])
