"""Atomic writes keep the old file on failure and give new files the usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from kdlib.io import atomic_write


def test_replaces_on_success_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "result.csv"
    with atomic_write(target, "w") as fh:
        fh.write("a,b\n")
    assert target.read_text() == "a,b\n"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["result.csv"]


def test_failure_keeps_old_content_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target, "w") as fh:
            fh.write("half of the new")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.csv"]
