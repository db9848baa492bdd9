"""Writing an output file so that it is either whole or absent.

Every command that writes a file goes through ``atomic_path``: the content is written to a temp
file beside the target (same folder, so the rename cannot cross file systems) with a unique name,
flushed to disk, then renamed onto the target. On any failure the temp file is removed, so a failed
or interrupted command never leaves a half-written output or a stray temp name behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from formats.errors import UsageError

__all__ = ["atomic_dir", "atomic_path", "check_writable_dir"]


def check_writable_dir(target: str | os.PathLike) -> Path:
    """The folder ``target`` will be written into, checked up front: it exists, is a folder and
    can be written. Raises ``UsageError`` naming the folder (not a raw errno on a temp name)."""
    parent = Path(target).absolute().parent
    if not parent.exists():
        raise UsageError(f"{parent}: output folder does not exist")
    if not parent.is_dir():
        raise UsageError(f"{parent}: output folder is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{parent}: output folder cannot be written")
    return parent


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """Yields a fresh temp path beside ``target``; when the block ends without an exception the
    file there is fsynced and renamed onto ``target``, otherwise it is removed.

    >>> with atomic_path("out.png") as tmp:      # doctest: +SKIP
    ...     cv2.imwrite(str(tmp), img)
    """
    target = Path(target)
    parent = check_writable_dir(target)
    # A unique name (mkstemp), keeping the suffix: encoders such as cv2.imwrite pick the format
    # from it.
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=parent)
    os.close(fd)
    tmp = Path(name)
    # mkstemp makes the file private (0600); the output gets the mode any new file would (the
    # umask's), or a portrait written for sharing could be read by its owner only.
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        if not tmp.exists():
            raise OSError(f"{target}: nothing was written")
        os.chmod(tmp, 0o666 & ~umask)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yields a fresh folder beside ``target`` (which may not exist or be an empty folder); when
    the block ends without an exception it gets the mode any new folder would and replaces
    ``target``, otherwise it is removed with what was written into it."""
    target = Path(target)
    parent = check_writable_dir(target)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        yield stage
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(stage, 0o777 & ~umask)  # mkdtemp's folder is private; an output is for its user to share
        if target.exists():
            target.rmdir()
        os.replace(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
