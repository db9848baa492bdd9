"""A real pyglet window under Xvfb: it opens at a comfortable size, draws, and its framebuffer
equals the headless render at that size."""

import os
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from testkit.sample import write_sample

pytestmark = pytest.mark.display


@pytest.fixture(scope="module")
def xvfb():
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    for n in range(99, 120):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            break
    proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "320x240x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(f"/tmp/.X11-unix/X{n}"):
            break
        if proc.poll() is not None:
            pytest.skip("Xvfb did not start")
        time.sleep(0.05)
    yield f":{n}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.parametrize("light", [None, "-50,10"], ids=["captured", "relit"])
def test_window_draws_what_the_headless_render_draws(xvfb, tmp_path, light):
    kinds = ("color", "alpha", "depth") + (("normal",) if light else ())
    p4d = write_sample(tmp_path / "s.p4d", n_keyframes=3, yaws=(-20.0, 0.0, 20.0), pitches=(-10.0, 10.0),
                       size=(64, 80), kinds=kinds)
    env = dict(os.environ, DISPLAY=xvfb)
    shot = tmp_path / "shot.png"
    args = ["--mode", "fixed", "--yaw", "7", "--pitch", "3", "--seed", "1"] + ([f"--light={light}"] if light else [])
    code = "import sys; from player.cli import main; sys.exit(main())"
    r = subprocess.run([sys.executable, "-c", code, str(p4d), *args, "--paused", "--frames", "3",
                        "--screenshot", str(shot)], env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0 and "GLX" in r.stderr + r.stdout:
        pytest.skip(f"Xvfb has no usable OpenGL: {r.stderr.strip()[-200:]}")
    assert r.returncode == 0, r.stderr
    got = cv2.imread(str(shot))
    # An 80 x 64 tile on a 320 x 240 screen: scaled up towards 512 px, to 90 % of the screen.
    assert got.shape == (216, 270, 3)
    r2 = subprocess.run([sys.executable, "-c", code, str(p4d), *args, "--export", str(tmp_path / "ref") + "/",
                         "--size", "270", "--seconds", "1", "--fps", "1", "--quiet"],
                        capture_output=True, text=True, timeout=120)
    assert r2.returncode == 0, r2.stderr
    ref = cv2.imread(str(tmp_path / "ref" / "frame_000000.png"))
    assert ref.shape == got.shape
    assert ref.std() > 10  # a portrait, not a blank frame
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
