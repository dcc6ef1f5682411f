"""benchmarks/time_make_run.sh: the fresh-clone timing of `make run`, with a stand-in `make`."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "time_make_run.sh"

# A `make` that does what `make run` leaves behind (the stamps the script dates its phases by),
# records where it ran, and fails when asked to: the real one takes an hour.
FAKE_MAKE = """#!/usr/bin/env bash
mkdir -p .venv data/synthetic results/synthetic/report build/notebooks
touch .venv/.installed data/synthetic/.preset-default
echo '{"cells": [], "metadata": {"papermill": {"duration": 412.6}}}' > build/notebooks/02_fusion_teacher.ipynb
printf 'reproduce 10%%\\rreproduce 100%%\\n'
touch results/synthetic/report/summary.md
echo "ran $* in $PWD"
exit ${FAKE_MAKE_STATUS:-0}
"""


@pytest.fixture
def fake_make(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").write_text(FAKE_MAKE)
    (bin_dir / "make").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.skipif(not (ROOT.parent / "shared").is_dir() or not Path("/usr/bin/time").exists(),
                    reason="needs ../shared beside the repository and /usr/bin/time")
@pytest.mark.parametrize("status", [0, 2])
def test_the_record_names_the_commit_the_phases_and_the_exit_status(tmp_path, fake_make, status):
    work, record = tmp_path / "work", tmp_path / "make_run.md"
    env = {**fake_make, "FAKE_MAKE_STATUS": str(status)}
    proc = subprocess.run(["bash", str(SCRIPT), str(work), str(record)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == status, proc.stderr
    text = record.read_text()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    assert f"clone of commit `{commit}`" in text and f"exit status: {status}" in text
    for phase in ("make venv", "kdlib synth", "kdlib reproduce", "kdlib.notebooks --full", "make run, total"):
        assert phase in text
    assert "unknown" not in text  # every phase dated by its stamp
    assert f"ran run in {work / 'main'}" in text  # `make run`, in the fresh clone
    assert "reproduce 100%" in text and "reproduce 10%reproduce" not in text  # progress bars split
    assert (work / "main" / ".git").is_dir() and (work / "shared").is_symlink()
    assert "| 02_fusion_teacher | 413 s |" in text  # papermill's own time of each notebook
    assert not list(tmp_path.glob(".make_run.*"))  # written atomically, no temporary left
    record.unlink()
    again = subprocess.run(["bash", str(SCRIPT), "--report-only", str(work), str(record)], capture_output=True,
                           text=True, env=env, timeout=60)
    assert again.returncode == status and record.read_text() == text  # the same record from the files


def test_report_only_needs_a_finished_run(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), "--report-only", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and f"{tmp_path} holds no finished run" in proc.stderr
