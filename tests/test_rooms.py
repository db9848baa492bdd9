"""The one-way doors: formats and player load without torch, scikit-learn or bake."""

import subprocess
import sys

import pytest

FORBIDDEN = ("torch", "sklearn", "bake")


@pytest.mark.parametrize("modules", [["formats"], ["player"], ["formats", "player"]])
def test_runtime_rooms_import_no_offline_modules(modules):
    # Import every submodule, not just the package, so a lazy import deep inside cannot hide.
    code = f"""
import importlib, pkgutil, sys
for name in {modules!r}:
    pkg = importlib.import_module(name)
    for info in pkgutil.walk_packages(pkg.__path__, name + "."):
        importlib.import_module(info.name)
bad = sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r})
print(",".join(bad))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"runtime rooms pulled in: {out.stdout.strip()}"


def test_check_detects_a_forbidden_import():
    # Guard the guard: the same probe must see torch when something does import it.
    code = "import sys, formats, torch; print(any(m == 'torch' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
