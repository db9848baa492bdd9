"""formats.atomic: an output is whole or absent, with the mode any new file gets."""

import os
import stat

import pytest

from formats.atomic import atomic_dir, atomic_path
from formats.errors import UsageError


def test_a_finished_output_replaces_the_target_with_the_umask_mode(tmp_path):
    target = tmp_path / "out.bin"
    old = os.umask(0o022)
    try:
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp != target
            tmp.write_bytes(b"whole")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"whole"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's private 0600
    assert os.listdir(tmp_path) == ["out.bin"]


def test_a_failed_output_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("encoder died")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_an_unusable_folder_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    for target, needle in ((tmp_path / "missing" / "o.png", "does not exist"),
                           (tmp_path / "file" / "o.png", "not a folder")):
        with pytest.raises(UsageError, match=needle):
            with atomic_path(target):
                pass


def test_a_folder_output_is_whole_or_absent(tmp_path):
    target = tmp_path / "site"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as stage:
            (stage / "a.txt").write_text("half")
            raise RuntimeError("stopped")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    target.mkdir()  # an empty folder may be replaced
    old = os.umask(0o022)
    try:
        with atomic_dir(target) as stage:
            (stage / "a.txt").write_text("whole")
    finally:
        os.umask(old)
    assert (target / "a.txt").read_text() == "whole" and list(tmp_path.iterdir()) == [target]
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
