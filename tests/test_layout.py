"""The layout the project keeps: small modules, test helpers outside the shipped packages."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("bake", "formats", "player")
MAX_LINES = 800


@pytest.mark.parametrize("room", ROOMS)
def test_no_module_is_over_800_lines(room):
    big = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / room).rglob("*.py"))
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"split these by what they hold: {big}"


def test_test_helpers_do_not_ship():
    # Fuzzers, sample writers, toy data and the kernels' slow twins live in testkit/, which the
    # wheel leaves out (pyproject: packages bake*, formats*, player*).
    shipped = [p for room in ROOMS for p in (ROOT / room).rglob("*.py")]
    helpers = [str(p.relative_to(ROOT)) for p in shipped if p.stem in ("fuzz", "sample", "toydata", "naive")]
    assert not helpers, f"move these to testkit/: {helpers}"
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not any(pattern.startswith("testkit") for pattern in include), include
