"""Shared fixtures: one small synthetic subject and one small bake per test session.

Both are made by the real commands (`bake synth`, `bake`), so every test that uses them also
exercises the chain a user runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# The smallest subject that still has three pose groups and a real graph: 4 s at 128².
SMALL_SYNTH = ["--seconds", "4", "--size", "128", "--seed", "7"]
SMALL_BAKE = ["--views", "5x3", "--size", "128", "--fps", "5"]


def run_cli(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run a console command as `python -m` so tests need no PATH set-up."""
    module = {"bake": "bake.cli", "p4d": "formats.cli", "player": "player.cli"}[args[0]]
    proc = subprocess.run([sys.executable, "-m", module, *args[1:]], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("synth") / "subject"
    run_cli("bake", "synth", "-o", str(d), *SMALL_SYNTH)
    return d


@pytest.fixture(scope="session")
def small_p4d(synth_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bake") / "small.p4d"
    run_cli("bake", str(synth_dir / "subject.ckpt"), "-o", str(out), *SMALL_BAKE)
    return out
