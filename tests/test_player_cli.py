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


def _png_frames(p4d, tmp_path, *args):
    """The player's own frames for the same export arguments, as RGB float [N, H, W, 3]."""
    d = tmp_path / "png"
    assert main([p4d, "--export", str(d) + "/", *args, "--quiet"]) == 0
    return np.stack([cv2.imread(str(d / f))[:, :, ::-1] for f in sorted(os.listdir(d))]).astype(float)


def _psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def test_export_mp4_is_h264_that_streams_and_matches_the_player(p4d, tmp_path):
    av = pytest.importorskip("av")
    out = tmp_path / "clip.mp4"
    args = ["--seconds", "2", "--fps", "12.5", "--size", "96"]
    assert main([p4d, "--export", str(out), *args, "--quiet"]) == 0
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert (s.width, s.height) == (96, 96) and s.average_rate == 12.5
        got = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert len(got) == 25
    ref = _png_frames(p4d, tmp_path, *args)
    assert min(_psnr(a, b) for a, b in zip(got, ref)) >= 35  # the default --crf 20
    data = out.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # +faststart: the index first, so it streams
    assert not [p for p in os.listdir(tmp_path) if p not in ("clip.mp4", "png")]  # no temp left behind


def test_export_mp4_crf_trades_size_and_odd_sizes_are_padded(p4d, tmp_path):
    av = pytest.importorskip("av")
    sizes = {}
    for crf in (10, 40):
        out = tmp_path / f"c{crf}.mp4"
        assert main([p4d, "--export", str(out), "--seconds", "1", "--size", "95", "--crf", str(crf), "--quiet"]) == 0
        sizes[crf] = out.stat().st_size
        with av.open(str(out)) as c:
            s = c.streams.video[0]
            assert (s.width, s.height) == (96, 96) and sum(1 for _ in c.decode(video=0)) == 25
    assert sizes[10] > 2 * sizes[40]


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


@pytest.mark.parametrize("dither", ["bayer", "none"])
def test_export_gif_decodes(p4d, tmp_path, dither):
    av = pytest.importorskip("av")
    out = tmp_path / "clip.gif"
    args = ["--seconds", "1", "--fps", "10"]
    assert main([p4d, "--export", str(out), *args, "--dither", dither, "--quiet"]) == 0
    with av.open(str(out)) as c:
        got = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert got.shape == (10, 48, 48, 3)
    # one 256-colour palette for the clip: close to the PNG export of the same frames
    ref = _png_frames(p4d, tmp_path, *args)
    assert np.abs(got - ref).mean() < 4


def test_export_webp_decodes(p4d, tmp_path):
    pytest.importorskip("av")
    Image = pytest.importorskip("PIL.Image")
    out = tmp_path / "clip.webp"
    args = ["--seconds", "1", "--fps", "10"]
    assert main([p4d, "--export", str(out), *args, "--quiet"]) == 0
    with Image.open(out) as im:
        assert im.format == "WEBP" and im.n_frames == 10 and im.size == (48, 48) and im.info["loop"] == 0
        got = []
        for i in range(im.n_frames):
            im.seek(i)
            got.append(np.asarray(im.convert("RGB")))
    ref = _png_frames(p4d, tmp_path, *args)
    assert min(_psnr(a, b) for a, b in zip(got, ref)) >= 30  # lossy at the default --quality 80


NO_AV = "import sys; sys.modules['av'] = None; from player.cli import main; sys.exit(main())"


def test_without_the_video_extra_mp4_falls_back_and_says_so_once(p4d, tmp_path):
    out = tmp_path / "clip.mp4"
    r = subprocess.run([sys.executable, "-c", NO_AV, p4d, "--export", str(out), "--seconds", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    said = [ln for ln in r.stderr.splitlines() if "portrait4d[video]" in ln]
    assert len(said) == 1 and "browsers" in said[0] and "Traceback" not in r.stderr
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 50 and cap.get(cv2.CAP_PROP_FPS) == 25
    ok, frame = cap.read()
    assert ok and frame.shape == (48, 48, 3)


@pytest.mark.parametrize("name", ["clip.gif", "clip.webp"])
def test_without_the_video_extra_gif_and_webp_name_the_fix(p4d, tmp_path, name):
    r = subprocess.run([sys.executable, "-c", NO_AV, p4d, "--export", str(tmp_path / name)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "pip install 'portrait4d[video]'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not os.listdir(tmp_path)


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
    (["{p4d}", "--crf", "60", "--export", "{tmp}/x.mp4"], "--crf"),
    (["{p4d}", "--quality", "101", "--export", "{tmp}/x.webp"], "--quality"),
    (["{p4d}", "--dither", "fancy", "--export", "{tmp}/x.gif"], "invalid choice"),
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
