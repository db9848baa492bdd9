"""`bake CKPT -o OUT.p4d` end to end on the small synthetic subject."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, SMALL_BAKE, run_cli
from formats import P4DReader
from formats.camera import Camera, Intrinsics, orbit_pose
from formats.codecs import dequantize_depth
from formats.p4d import downscale_depth


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_small_bake_info_counts(small_p4d):
    info = json.loads(run_cli("p4d", "info", str(small_p4d), "--json").stdout)
    assert info["views"] == 15
    assert info["keyframes"] >= 18
    assert info["transitions"] >= 1
    assert info["pose_groups"] == 3
    assert run_cli("p4d", "validate", str(small_p4d)).returncode == 0


def test_tiles_match_direct_renders(small_p4d, synth_dir):
    from bake.field import load_field

    field = load_field(synth_dir / "subject.ckpt")
    with P4DReader(small_p4d) as r:
        meta = r.meta
        grid = meta["grid"]
        intr = Intrinsics.from_dict(grid["intrinsics"])
        n_yaw = len(grid["yaws"])
        near, far = grid["depth"]["near"], grid["depth"]["far"]
        for k, v in [(0, 7), (r.n_keyframes // 2, 0), (r.n_keyframes - 1, r.n_views - 1)]:
            yaw, pitch = grid["yaws"][v % n_yaw], grid["pitches"][v // n_yaw]
            cam = Camera(intr, orbit_pose(yaw, pitch, grid["radius"], grid["center"]))
            rgb, alpha, depth = field.render(cam, np.asarray(meta["keyframes"]["expressions"][k], np.float32))
            want_rgb = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
            assert psnr(r.tile(k, v, "color"), want_rgb) >= 38.0
            np.testing.assert_array_equal(r.tile(k, v, "alpha"), np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8))
            got_depth = dequantize_depth(r.tile(k, v, "depth"), near, far)
            depth = downscale_depth(depth, r.depth_scale)
            hit = depth > 0
            assert np.array_equal(got_depth > 0, hit)
            assert np.max(np.abs(got_depth[hit] - depth[hit])) <= (far - near) / 65534
        # keyframes follow the capture's expression sequence at the bake rate
        times = np.asarray(meta["keyframes"]["times"])
        np.testing.assert_allclose(np.diff(times), 1 / 5.0, atol=1e-6)
        exprs = np.asarray(meta["keyframes"]["expressions"])
        cap = field.capture
        for k in (0, len(times) // 2):
            want = [np.interp(cap.times[0] + times[k], cap.times, cap.expressions[:, c])
                    for c in range(cap.expressions.shape[1])]
            np.testing.assert_allclose(exprs[k], want, atol=1e-5)


def test_graph_is_connected_and_groups_are_consistent(small_p4d):
    with P4DReader(small_p4d) as r:
        meta = r.meta
    n = len(meta["keyframes"]["times"])
    g = meta["graph"]
    nxt = {i: ({i + 1} if i + 1 < n else set()) for i in range(n)}
    for s, d, p, _ in g["transitions"]:
        assert 0 <= d < s < n and 0 < p <= 1
        nxt[s].add(d)
    for start in range(n):
        seen, stack = {start}, [start]
        while stack:
            for j in nxt[stack.pop()] - seen:
                seen.add(j)
                stack.append(j)
        assert len(seen) == n, f"keyframe {start} reaches only {len(seen)} of {n}"
    labels = meta["keyframes"]["pose_group"]
    assert sorted(set(labels)) == [0, 1, 2]
    for k, row in enumerate(g["forced"]):
        for grp, target in enumerate(row):
            assert (target == -1) == (labels[k] == grp)
            if target != -1:
                assert labels[target] == grp


def _bake_cmd(synth_dir, out, *extra):
    return [sys.executable, "-m", "bake.cli", str(synth_dir / "subject.ckpt"), "-o", str(out), *SMALL_BAKE, *extra]


def test_killed_bake_resumes_to_identical_bytes(synth_dir, small_p4d, tmp_path):
    out = tmp_path / "resumed.p4d"
    partial = tmp_path / "resumed.p4d.partial"
    proc = subprocess.Popen(_bake_cmd(synth_dir, out), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # Kill once a good part of the tiles is on disk (the graph renders come first).
    deadline = time.monotonic() + 300
    full = small_p4d.stat().st_size
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists() and partial.stat().st_size > full // 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "bake finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and partial.exists()
    r = run_cli("bake", str(synth_dir / "subject.ckpt"), "-o", str(out), *SMALL_BAKE, "--resume", "--quiet")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)  # --quiet: silent
    assert out.read_bytes() == small_p4d.read_bytes()
    assert not partial.exists()


def test_ctrl_c_leaves_nothing_at_output(synth_dir, tmp_path):
    out = tmp_path / "int.p4d"
    # SIGINT at its default in the child: a runner started in the background (non-interactive
    # shells ignore SIGINT there, and children inherit that) must not decide what this tests.
    proc = subprocess.Popen(_bake_cmd(synth_dir, out), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    partial = tmp_path / "int.p4d.partial"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not partial.exists():
        time.sleep(0.02)
    assert proc.poll() is None, "bake finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "--resume" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["missing.ckpt", "-o", "x.p4d"], "no such checkpoint"),
    (["{ckpt}", "-o", "x.p4d", "--views", "9"], "YAWxPITCH"),
    (["{ckpt}", "-o", "x.p4d", "--yaw-range", "40,-40"], "LO <= HI"),
    (["{ckpt}", "-o", "/nonexistent-dir/x.p4d"], "does not exist"),
    (["{ckpt}", "-o", "x.p4d", "--drive", "/nonexistent-dir"], "no dataset.json"),
])
def test_bad_input_is_one_line_error(synth_dir, tmp_path, args, message):
    args = [a.replace("{ckpt}", str(synth_dir / "subject.ckpt")) for a in args]
    args = [str(tmp_path / a) if a == "x.p4d" else a for a in args]
    proc = run_cli("bake", *args, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("bake: error:")
    assert not (tmp_path / "x.p4d").exists()


def test_not_a_checkpoint_is_rejected(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x80\x04not a checkpoint at all")
    proc = run_cli("bake", str(bad), "-o", str(tmp_path / "x.p4d"), check=False)
    assert proc.returncode == 1 and "not a loadable checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_drive_takes_keyframes_from_another_dataset(synth_dir, tmp_path):
    from bake.dataset import load_dataset
    from bake.keyframes import capture_views

    driver = tmp_path / "driver"
    run_cli("bake", "synth", "-o", str(driver), "--seconds", "2", "--size", "64", "--seed", "11")
    out = tmp_path / "reenact.p4d"
    run_cli("bake", str(synth_dir / "subject.ckpt"), "-o", str(out), "--drive", str(driver),
            "--views", "3x1", "--size", "64", "--fps", "5")
    ds = load_dataset(driver)
    with P4DReader(out) as r:
        kf = r.meta["keyframes"]
        assert kf["source"] == "drive"
        assert len(kf["times"]) == 10  # 0.0 .. 1.8 s of the 2 s driver at 5 fps
        times = ds.times() - ds.times()[0]
        want = np.stack([np.interp(kf["times"], times, ds.expressions()[:, c])
                         for c in range(ds.expression_dim)], axis=1)
        np.testing.assert_allclose(kf["expressions"], want, atol=1e-5)
        views = capture_views(ds.poses())
        np.testing.assert_allclose(np.asarray(kf["capture_view"])[:, 0], np.interp(kf["times"], times, views[:, 0]),
                                   atol=1e-4)
        # the view grid spans what the subject's own capture saw, not the driver's motion
        from bake.field import load_field
        from bake.keyframes import captured_range

        angles = load_field(synth_dir / "subject.ckpt").capture.view_angles()
        yaws = r.meta["grid"]["yaws"]
        assert (yaws[0], yaws[-1]) == pytest.approx(captured_range(angles[:, 0]))
