"""Bad data through ``edgedigit data`` and ``edgedigit train`` (issue 7): wrong shapes and dtypes, labels out
of range, NaN, empty files, IDX files with a wrong magic number or length. One line naming the file and the
problem, exit code 1, no traceback, nothing written under build/. (``tests/test_data.py`` checks the
loader itself; this checks what a user of the CLI sees.)"""

from __future__ import annotations

import pytest

from reliability_cases import data_cases, judge, run_cli


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return data_cases(tmp_path_factory.mktemp("baddata"))


def test_every_kind_is_covered(cases):
    assert {c.kind for c in cases} == {
        "wrong shape", "wrong dtype", "labels out of range", "NaN", "missing array", "empty split", "empty file",
        "not a dataset", "IDX wrong magic", "IDX wrong length", "IDX corrupt gzip"}


@pytest.mark.parametrize("command", [["data"], ["train", "mlp", "--epochs", "1"]], ids=["data", "train"])
def test_bad_data_is_one_line_naming_the_file(cases, build_dir, command):
    failures = []
    for case in cases:
        out = run_cli([*command, "--data", case.path], build_dir)
        # an IDX folder's message names the bad file inside it
        problem = judge(out, case, [str(case.path)])
        if problem is not None:
            failures.append(f"{case.kind} / {case.label}: {problem}")
    assert failures == []
    # nothing written: only the build folder's writer lock (build/.edgedigit.lock) may exist
    assert not build_dir.exists() or [p.name for p in build_dir.rglob("*.*")] in ([], [".edgedigit.lock"])
