"""numba's on-disk cache for this package, keyed on all of its modules together.

numba keys a cached kernel on its own source file's modification time and size only. A kernel here
compiles helpers from sibling modules into itself (``reprojection._warp`` inlines ``lattice``, ``mesh`` and
``pixels``), so an edit to a helper's module would leave the caller's stale machine code in use.
The locators below key every kernel of the package on the stamp of all its modules: an edit
anywhere in the package recompiles the package's kernels, as an edit of a one-file module does.
They sit first in numba's list of locators and answer only for files of this package.
"""

from __future__ import annotations

from pathlib import Path

from numba.core import caching

__all__ = ["package_stamp", "install"]

_PACKAGE = Path(__file__).resolve().parent


def package_stamp(folder: Path) -> tuple[float, int, int]:
    """(latest modification time, total size, count) of the ``.py`` files in ``folder``."""
    stats = [p.stat() for p in sorted(Path(folder).glob("*.py"))]
    return max(s.st_mtime for s in stats), sum(s.st_size for s in stats), len(stats)


class _PackageStamped:
    def get_source_stamp(self):
        return package_stamp(Path(self._py_file).parent)

    @classmethod
    def from_function(cls, py_func, py_file):
        if Path(py_file).resolve().parent != _PACKAGE:
            return None
        return super().from_function(py_func, py_file)


class PackageUserDirLocator(_PackageStamped, caching.UserProvidedCacheLocator):
    """numba's ``NUMBA_CACHE_DIR`` locator, with the package's stamp."""


class PackageInTreeLocator(_PackageStamped, caching.InTreeCacheLocator):
    """numba's ``__pycache__`` locator, with the package's stamp."""


def install() -> None:
    """Put the package's locators first in numba's list (once; before any kernel is defined)."""
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # renamed in numba 0.61
    classes = impl._locator_classes
    for cls in (PackageInTreeLocator, PackageUserDirLocator):  # user dir ends up first, as in numba
        if cls not in classes:
            classes.insert(0, cls)
