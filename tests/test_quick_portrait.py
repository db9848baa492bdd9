"""``bake DATASET/``: a portrait from the tracked frames alone (bake/anchor/shell.py), its head
shell, its fill from the nearest frame, leave-out, and the command line."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from bake.anchor.blend import AnchorConfig
from bake.anchor.shell import HeadShell, ShellField, fit_shell
from bake.data.load import load_dataset
from formats import P4DReader
from formats.camera import Camera, Intrinsics, orbit_pose, pixel_rays, view_angles
from tests.conftest import run_cli


def test_shell_depth_is_the_nearest_hit_of_head_and_neck():
    shell = HeadShell(centre=(0.0, 0.0, 0.0), radii=(0.1, 0.1, 0.1), neck_radii=(0.05, 0.05), neck_bottom=-0.3)
    cam = Camera(Intrinsics.from_fov(40.0, 65, 65), orbit_pose(0.0, 0.0, 0.6))
    d = shell.depth(cam)
    assert d[32, 32] == pytest.approx(0.5, abs=1e-5)  # the sphere's front, straight ahead
    assert d[0, 0] == 0 and d[0, 32] == 0  # rays past the head and above it miss
    # Every hit lies on the sphere or on the neck's cylinder between its ends.
    o, dirs = pixel_rays(cam)
    p = o + d[..., None] * dirs
    hit = d > 0
    on_head = np.abs(np.linalg.norm(p, axis=-1) - 0.1) < 1e-4
    on_neck = (np.abs(np.hypot(p[..., 0] / 0.05, p[..., 2] / 0.05) - 1) < 1e-3) & (p[..., 1] <= 0) & (p[..., 1] >= -0.3)
    assert (on_head | on_neck)[hit].all()
    assert (on_neck & hit & ~on_head).sum() > 20  # the neck shows below the head
    # The neck, seen from the front straight below the head centre, is 5 cm before the axis.
    row = int(np.argmax(on_neck[:, 32] & hit[:, 32] & (p[:, 32, 1] < -0.15)))
    assert d[row, 32] == pytest.approx(0.6 - 0.05, abs=2e-3)


def test_fitted_shell_holds_the_masks(synth_dir):
    # The shell seen from each captured camera, with the band the anchored bake draws the
    # frame's matte over beyond it (AnchorConfig.shell), covers the head's mask (what the frames
    # can put on it) without spreading far beyond it (the frames' mattes, not the shell, give
    # the tiles' alpha). Past 25 degrees of yaw the nose and the
    # synthetic subject's shirt reach out of it by a few per cent.
    ds = load_dataset(synth_dir)
    shell = fit_shell(ds)
    band = AnchorConfig().shell * ds.width
    central, outer, spill = [], [], []
    for i in range(0, len(ds.frames), max(1, len(ds.frames) // 8)):
        cam = Camera(ds.intrinsics, np.linalg.inv(ds.frames[i].pose))
        inside = shell.depth(cam) > 0
        reach = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5) <= band
        m = ds.load_mask(i) > 127
        yaw = view_angles(cam.cam_to_head)[0]
        (central if abs(yaw) <= 25 else outer).append((reach & m).sum() / m.sum())
        spill.append((inside & ~m).sum() / inside.sum())
    assert central and outer
    assert min(central) > 0.98 and min(outer) > 0.9, (central, outer)
    assert max(spill) < 0.35, spill  # grown to hold the hair below the eyes, it overhangs the cheeks


def test_shell_field_fills_from_the_nearest_frame_never_a_left_out_one(synth_dir):
    ds = load_dataset(synth_dir)
    shell = fit_shell(ds)
    test = ds.split["test"]
    full, held = ShellField(ds, shell), ShellField(ds, shell, frozenset(test))
    for i in test[:3]:
        cam = Camera(ds.intrinsics, np.linalg.inv(ds.frames[i].pose))
        assert full.nearest_frame(cam) == i  # at its own camera a frame is the nearest
        assert held.nearest_frame(cam) not in test
    # At a frame's own camera its render is that frame: colour inside the matte, the matte as alpha.
    i = len(ds.frames) // 2
    cam = Camera(ds.intrinsics, np.linalg.inv(ds.frames[i].pose))
    rgb, alpha, depth = full.render(cam, ds.frames[i].expression)
    img, m = ds.load_image(i).astype(np.float32) / 255, ds.load_mask(i) / 255.0
    inner = (m > 0.99) & (alpha > 0.99)
    assert inner.sum() > 0.9 * (m > 0.99).sum()
    assert np.abs(rgb[inner] - img[inner]).max() < 0.02
    assert (depth[alpha > 0] > 0).all()
    with pytest.raises(ValueError, match="every frame is left out"):
        ShellField(ds, shell, frozenset(range(len(ds.frames))))


def test_quick_portrait_from_a_dataset(synth_dir, tmp_path):
    out = tmp_path / "quick.p4d"
    small = ["--views", "5x3", "--size", "128", "--fps", "2", "-q"]
    run_cli("bake", str(synth_dir), "-o", str(out), *small)
    with P4DReader(out) as r:
        src = r.meta["source"]
        assert src["kind"] == "shell" and src["tiles"] == "anchored" and src["left_out_frames"] == []
    score = json.loads(run_cli("bake", "eval-portrait", str(out), str(synth_dir), "--json").stdout)
    # Replay draws each keyframe at its own frame's camera, between grid views 17 degrees apart
    # warped through the shell: the frame, blurred by two resamplings and the shell's error.
    # (The exact synthetic head's own bake on this grid scores 29.7 dB at sharpness 0.66.)
    assert score["replay_psnr"] > 26, score
    assert score["replay_sharpness"] > 0.5, score
    held = tmp_path / "held.p4d"
    run_cli("bake", str(synth_dir), "-o", str(held), "--leave-out", "test", *small)
    with P4DReader(held) as r:
        test = json.loads((synth_dir / "dataset.json").read_text())["split"]["test"]
        assert r.meta["source"]["left_out_frames"] == sorted(test)
    # Bad input: one line, exit 2, nothing written.
    (tmp_path / "empty").mkdir()
    for args in ([str(tmp_path / "empty")], [str(synth_dir), "--source", "field"],
                 [str(synth_dir), "--drive", str(synth_dir)]):
        bad = tmp_path / "bad.p4d"
        proc = run_cli("bake", *args, "-o", str(bad), *small, check=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr and not bad.exists()
