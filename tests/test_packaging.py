"""`pip install .` ships every module, every firmware template and every board file inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from conftest import REPO


@pytest.mark.slow
def test_wheel_contains_package_templates_and_boards(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO),
                    "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("edgedigit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = {f"edgedigit/{p.relative_to(REPO / 'toolchain/edgedigit').as_posix()}"
                for p in (REPO / "toolchain/edgedigit").rglob("*.py")}
    expected |= {f"edgedigit/firmware_templates/{p.relative_to(REPO / 'firmware_templates').as_posix()}"
                 for p in (REPO / "firmware_templates").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    expected |= {f"edgedigit/boards_data/{p.name}" for p in (REPO / "boards").glob("*.toml")}
    assert expected - names == set()
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "edgedigit = edgedigit.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_help_does_not_import_tensorflow():
    code = "import sys; from edgedigit.cli import app; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
