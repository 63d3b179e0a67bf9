"""``bench device``'s checks that need no device: ``--project`` must be a project exported for this board from
this very model (its ``edgedigit.lock.json`` says so), else one line and nothing built or written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgedigit.cli import app
from edgedigit.core.errors import BoardError, EdgeDigitError, ModelError
from edgedigit.core.fsutil import sha256_file, write_json
from edgedigit.core.store import ModelFolder
from edgedigit.measure.bench_device import bench_device, check_project
from edgedigit.targets.boards import load_board

TINY = Path(__file__).resolve().parent / "golden" / "tiny.tflite"


@pytest.fixture
def mlp(build_dir) -> Path:
    """A trained, quantized ``mlp`` (the tiny golden model as its int8 file)."""
    folder = ModelFolder("mlp")
    write_json(folder.card_path, {"variant": "mlp", "kind": "neural"})
    shutil.copy(TINY, folder.int8_path)
    return folder.int8_path


def _project(root: Path, sha: str | None, board: str = "host") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / "edgedigit.lock.json", {"board": {"id": board}, "model": {"name": "mlp", "sha256": sha},
                                              "backend": "native"})
    return root


def test_a_project_of_this_model_and_board_is_taken(mlp, tmp_path):
    sha = sha256_file(mlp)
    lock = check_project(_project(tmp_path / "p", sha), load_board("host"), "mlp", mlp, sha)
    assert lock["model"]["sha256"] == sha and lock["backend"] == "native"


def test_a_project_of_another_model_is_refused(mlp, tmp_path):
    sha, other = sha256_file(mlp), "ab" * 32
    project = _project(tmp_path / "p", other)
    with pytest.raises(ModelError) as err:
        check_project(project, load_board("host"), "mlp", mlp, sha)
    assert str(err.value) == (f"{project}: exported from model {other}, but {mlp} is {sha}; export it again "
                              "(`edgedigit export --board host --variant mlp`) or leave out --project")


def test_a_project_for_another_board_or_no_project_is_refused(mlp, tmp_path):
    sha = sha256_file(mlp)
    with pytest.raises(BoardError, match=r"exported for board qemu-m4, not host"):
        check_project(_project(tmp_path / "q", sha, board="qemu-m4"), load_board("host"), "mlp", mlp, sha)
    with pytest.raises(ModelError, match=r"not an exported firmware project \(no edgedigit.lock.json\)"):
        check_project(tmp_path / "nothing", load_board("host"), "mlp", mlp, sha)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "edgedigit.lock.json").write_text("{ not json")
    with pytest.raises(ModelError, match=r"edgedigit.lock.json: unreadable"):
        check_project(broken, load_board("host"), "mlp", mlp, sha)


def test_bench_device_refuses_before_building_or_writing(mlp, build_dir, tmp_path):
    project = _project(tmp_path / "p", "00" * 32)
    res = CliRunner().invoke(app, ["bench", "device", "--board", "host", "--variant", "mlp", "--project", str(project),
                                   "--samples", "2"])
    assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
    assert f"exported from model {'00' * 32}, but {mlp} is {sha256_file(mlp)}" in " ".join(res.output.split())
    assert sorted(p.name for p in project.iterdir()) == ["edgedigit.lock.json"]  # nothing built
    assert not (build_dir / "results").exists() and not (build_dir / "firmware").exists()
    with pytest.raises(EdgeDigitError, match=r"--project .* and --port /dev/ttyX: .* give one of them"):
        bench_device("host", "mlp", project=project, port="/dev/ttyX", progress=False)
