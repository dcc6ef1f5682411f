"""Atomic writes keep the old file on failure and give new files the usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from kdlib.io import atomic_dir, atomic_path, atomic_write


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


def test_atomic_dir_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "entry"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists() and list((tmp_path / "sub").iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("whole")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "whole"
    assert list((tmp_path / "sub").iterdir()) == [target]


def test_atomic_dir_keeps_an_entry_another_process_finished_first(tmp_path):
    target = tmp_path / "entry"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("second")
        target.mkdir()
        (target / "a.txt").write_text("first")  # finished meanwhile by someone else
    assert (target / "a.txt").read_text() == "first"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_path_hands_a_writer_a_temporary_name(tmp_path):
    target = tmp_path / "sub" / "rec.edf"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".rec.edf.") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"new")  # a writer that opens the file by name (torch.save, MNE's export)
    assert target.read_bytes() == b"new" and [p.name for p in target.parent.iterdir()] == ["rec.edf"]
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"new" and [p.name for p in target.parent.iterdir()] == ["rec.edf"]
