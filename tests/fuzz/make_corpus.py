"""Write the seed corpus of the protocol fuzzer: valid sessions, one file each (first byte: clock step).

Run ``python tests/fuzz/make_corpus.py`` to regenerate ``tests/fuzz/corpus/`` (deterministic: fixed
seeds). Each session is what a real host sends: MLPerf DUT commands, a whole image loaded with ``db``
frames, ``infer``, and edgedigit's ``ed-`` commands with plain and zero-run image data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgedigit.targets.protocol import encode_zero_runs

HERE = Path(__file__).resolve().parent


def _image(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, 784, dtype=np.uint8)
    px[rng.random(784) < 0.7] = 0
    return px.tobytes()


def _db_load(image: bytes, frame_bytes: int) -> str:
    frames = [image[i:i + frame_bytes].hex() for i in range(0, len(image), frame_bytes)]
    return f"db load {len(image)}%" + "".join(f"db {f}%" for f in frames)


def sessions() -> dict[str, bytes]:
    """The corpus: file name -> bytes (first byte: clock step in 10 ms units per received byte)."""
    img0, img1 = _image(0), _image(1)
    text = {
        "basic": "name%profile%timestamp%help%ed-info%results%",
        "db_infer": _db_load(img0, 64) + "db print 20 5%infer 3 1%results%",
        "db_infer_crlf": "\r\n".join(["name%", _db_load(img1, 196), "infer 2 0%", "results%"]),
        "ed_run_compact": f"ed-run {encode_zero_runs(img0)}%ed-run%ed-echo abc123%",
        "ed_run_plain": f"ed-run {img1.hex()}%results%",
        "black_white": f"ed-run {encode_zero_runs(bytes(784))}%ed-run {'ff' * 784}%",
        "resync": "%%ed-echo Zz9%name%",
        "errors": "bogus%db load 785%db 00%infer 0%ed-echo 12345678901234567%a b c d e%",
        "bad_hex": "db load 4%db 0g%db abc%db 0102030405%db 01020304%ed-run z0%ed-run zz%",
        "partial_load": "db load 784%db 0102%db 0304%infer 1 0%",
    }
    out = {name: bytes([0]) + t.encode("ascii") for name, t in text.items()}
    out["slow_sender"] = bytes([100]) + b"name%ed-echo slow%"  # 1 s per byte: still one frame
    out["cut_frames"] = bytes([250]) + b"ed-run 00name%"  # 2.5 s per byte: every partial frame times out
    return out


def main() -> int:
    """Write the corpus files; returns the process exit code."""
    corpus = HERE / "corpus"
    corpus.mkdir(exist_ok=True)
    for name, data in sessions().items():
        (corpus / name).write_bytes(data)
    print(f"wrote {len(sessions())} sessions to {corpus}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
