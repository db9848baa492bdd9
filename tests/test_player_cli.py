"""`player` end to end on small generated .p4d files: export, bench, errors."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from player.cli import main
from testkit.sample import write_sample


@pytest.fixture(scope="module")
def p4d(tmp_path_factory):
    d = tmp_path_factory.mktemp("p4d")
    return str(write_sample(d / "s.p4d", n_keyframes=6, yaws=(-20.0, 0.0, 20.0), pitches=(-10.0, 10.0),
                            size=(48, 48)))


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-c", "import sys; from player.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_export_mp4_has_the_asked_length(p4d, tmp_path):
    out = tmp_path / "clip.mp4"
    assert main([p4d, "--export", str(out), "--seconds", "6", "--quiet"]) == 0
    cap = cv2.VideoCapture(str(out))
    n, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    assert fps == 25 and n == 150  # 6 s
    ok, frame = cap.read()
    assert ok and frame.shape == (48, 48, 3)
    assert not [p for p in os.listdir(tmp_path) if p != "clip.mp4"]  # no temp left behind


def test_export_frames_are_deterministic_per_seed(p4d, tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        assert main([p4d, "--export", str(tmp_path / name) + "/", "--seconds", "4", "--fps", "10",
                     "--seed", str(seed), "--mode", "capture", "--quiet"]) == 0
    files = sorted(os.listdir(tmp_path / "a"))
    assert len(files) == 40 and files == sorted(os.listdir(tmp_path / "b"))
    read = lambda d: np.stack([cv2.imread(str(tmp_path / d / f)) for f in files])
    a, b, c = read("a"), read("b"), read("c")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.std() > 5  # something was drawn


def test_export_gif_decodes(p4d, tmp_path):
    out = tmp_path / "clip.gif"
    assert main([p4d, "--export", str(out), "--seconds", "1", "--fps", "10", "--quiet"]) == 0
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    assert len(frames) == 10 and frames[0].shape[:2] == (48, 48)
    # a 256-colour palette per frame: close to the PNG export of the same frame
    assert main([p4d, "--export", str(tmp_path / "png") + "/", "--seconds", "1", "--fps", "10", "--quiet"]) == 0
    ref = cv2.imread(str(tmp_path / "png" / "frame_000000.png")).astype(int)
    assert np.abs(frames[0].astype(int) - ref).mean() < 4


def test_bench_json(p4d):
    r = run_cli("bench", p4d, "--threads", "1", "--json", "--seconds", "1", "--no-pace")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert {"p50_ms", "p99_ms", "fps", "hit_rate"} <= set(res)
    assert 0 < res["p50_ms"] <= res["p99_ms"] and res["fps"] > 0 and 0 <= res["hit_rate"] <= 1
    assert res["threads"] == 1 and res["frames"] == 60


@pytest.mark.parametrize("args,needle", [
    (["/nonexistent.p4d"], "no such file"),
    (["{p4d}", "--export", "{tmp}/x.avi"], "unknown export type"),
    (["{p4d}", "--export", "{tmp}/nodir/x.mp4"], "does not exist"),
    (["{p4d}", "--size", "3", "--export", "{tmp}/x.mp4"], "--size"),
    (["{bad}"], "not a playable .p4d"),
    (["bench", "/nonexistent.p4d"], "no such file"),
    (["bench", "{p4d}", "--view-sharpen", "0.5"], "--view-sharpen"),
    (["{tmp}"], "is a folder"),
    (["{p4d}", "--no-such-flag"], "unrecognized arguments"),
    (["bench"], "the following arguments are required"),
])
def test_bad_input_is_one_line_no_traceback(p4d, tmp_path, args, needle):
    bad = tmp_path / "bad.p4d"
    bad.write_bytes(b"not a p4d file at all" * 10)
    args = [a.format(p4d=p4d, tmp=tmp_path, bad=bad) for a in args]
    r = run_cli(*args)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*partial*"))


def test_no_display_says_so(p4d):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = run_cli(p4d, env=env)
    assert r.returncode == 1  # not a usage error: the command was right, the machine has no screen
    assert "no display" in r.stderr and "--export" in r.stderr and "Traceback" not in r.stderr


def _damage_one_tile(src: str, dst, kind: str = "color", keyframe: int = 2, view: int = 1):
    """A copy of ``src`` with one byte of one tile's chunk flipped (its crc then fails)."""
    from formats import P4DReader
    with P4DReader(src) as r:
        rec = r.index[keyframe, view, r.kinds.index(kind)]
        offset, length = int(rec["offset"]), int(rec["length"])
    data = bytearray(open(src, "rb").read())
    data[offset + length // 2] ^= 0xFF
    dst.write_bytes(bytes(data))
    return str(dst)


def test_a_damaged_tile_is_named_once_and_playback_goes_on(p4d, tmp_path):
    bad = _damage_one_tile(p4d, tmp_path / "damaged.p4d")
    out = tmp_path / "frames"
    # Capture mode walks every keyframe (6 at 2.5/s in the sample) from every view around the front.
    r = run_cli(bad, "--export", str(out) + "/", "--seconds", "8", "--fps", "5", "--mode", "capture", "--quiet")
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(out)) == 40  # played to the end
    lines = r.stderr.strip().splitlines()
    named = [ln for ln in lines if "keyframe 2 view 1 is damaged" in ln]
    assert len(named) == 1, r.stderr  # said once, however often the tile is drawn
    assert any("p4d validate" in ln for ln in lines) and "Traceback" not in r.stderr
    frame = cv2.imread(str(out / "frame_000000.png"))
    assert frame is not None and frame.std() > 5


def test_a_damaged_tile_is_stood_in_by_its_nearest_keyframe(p4d, tmp_path):
    from formats import P4DReader
    from player.cache import TileCache, decode_tile
    bad = _damage_one_tile(p4d, tmp_path / "damaged.p4d", kind="depth", keyframe=2, view=1)
    seen = []
    with P4DReader(bad) as r:
        cache = TileCache(r, prefetch=False, on_damaged=lambda key, why: seen.append(key))
        tile = cache.get(2, 1)
        again = cache.get(2, 1)
        want = decode_tile(r, 1, 1)  # keyframe 1 of the same view: same camera, nearest in time
    assert seen == [(2, 1)] and again is tile
    assert np.array_equal(tile.rgba, want.rgba) and np.array_equal(tile.depth, want.depth)


def test_window_size_is_comfortable_and_fits_the_screen():
    from player.window import comfortable_size
    assert comfortable_size((256, 256), (1920, 1080)) == 512  # a small tile, scaled up
    assert comfortable_size((512, 384), (1920, 1080)) == 512  # large enough as it is
    assert comfortable_size((1024, 1024), (1920, 1080)) == 972  # larger than the screen: fits 90 % of it
    assert comfortable_size((256, 256), (500, 400)) == 360  # a small screen: as large as it fits
    assert comfortable_size((256, 320), (1280, 800)) == 512  # the longest side is what grows
