"""End to end on a generated analytic dataset: `bake train --steps 300 --size 64`, `bake eval --json`,
--resume, the checkpoint contract, and NerfField rendering."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from testkit.toydata import write_toy_dataset


def _bake(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "bake.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("nerf")
    ds = write_toy_dataset(root / "toy", n_frames=30, size=64)
    ckpt = root / "x.ckpt"
    # The CI training command; --rays keeps it inside CI time on 2 shared cores.
    r = _bake("train", ds, "-o", ckpt, "--steps", 300, "--size", 64, "--rays", 256)
    assert r.returncode == 0, r.stderr[-2000:]
    return ds, ckpt, r


@pytest.mark.slow
def test_train_writes_a_safe_checkpoint_and_a_validation_sheet(trained):
    ds, ckpt, r = trained
    assert "perceptual loss off" in r.stderr
    c = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert c["format"] == "portrait4d-ckpt" and c["kind"] == "nerf-blendshape"
    assert c["train_stats"]["steps"] == 300 and c["train_stats"]["size"] == 64
    assert c["capture"]["expression_names"] == ["jaw", "tint"]
    assert isinstance(c["config"], dict) and all(isinstance(v, (int, float, str)) for v in c["config"].values())
    assert c["density_grid"].numel() == c["config"]["grid_res"] ** 3
    assert len(c["expression_range"]["max"]) == 2
    sheet = cv2.imread(str(ckpt.with_name("x.val.png")))
    assert sheet is not None and sheet.shape[1] == 3 * 64


@pytest.mark.slow
def test_eval_json_beats_an_empty_prediction(trained):
    ds, ckpt, _ = trained
    r = _bake("eval", ckpt, ds, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert {"psnr", "ssim", "l1", "psnr_masked", "psnr_interior", "psnr_edge"} <= res.keys() and res["frames"] == 3
    assert 0 < res["edge_share"] < 1
    r0 = _bake("eval", ckpt, ds, "--json", "--edge", "0")
    assert r0.returncode == 0 and "psnr_edge" not in json.loads(r0.stdout), r0.stderr[-2000:]
    # Baseline from the data itself: PSNR of rendering nothing (black) against the test frames.
    from bake.data.load import load_dataset
    d = load_dataset(ds)
    mses = []
    for i in d.split["test"]:
        gt = d.load_image(i).astype(np.float64) / 255 * (d.load_mask(i)[..., None] / 255.0)
        mses.append((gt ** 2).mean())
    empty = float(np.mean([10 * np.log10(1 / m) for m in mses]))
    assert res["psnr"] > empty + 6.0, (res, empty)


@pytest.mark.slow
def test_resume_continues_the_step_count(trained, tmp_path):
    ds, ckpt, _ = trained
    copy = tmp_path / "y.ckpt"
    copy.write_bytes(ckpt.read_bytes())
    r = _bake("train", ds, "-o", copy, "--steps", 310, "--resume", "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    c = torch.load(copy, map_location="cpu", weights_only=True)
    assert c["train_stats"]["steps"] == 310


@pytest.mark.slow
def test_field_renders_the_contract_and_caches_per_expression(trained):
    from bake.fields.registry import load_field
    from formats.camera import Camera, Intrinsics, orbit_pose
    _, ckpt, _ = trained
    fld = load_field(ckpt, "cpu")
    cam = Camera(Intrinsics.from_fov(30.0, 40, 32), orbit_pose(10.0, 5.0, 0.5))
    rgb, alpha, depth = fld.render(cam, np.array([0.5, 0.5], np.float32))
    assert rgb.shape == (32, 40, 3) and alpha.shape == depth.shape == (32, 40)
    assert rgb.dtype == alpha.dtype == depth.dtype == np.float32
    assert np.all(rgb <= alpha[..., None] + 1e-4)  # premultiplied
    assert alpha.max() > 0.5 and alpha.min() < 0.05  # the ball and the empty corners
    assert np.all(depth[alpha < 1e-3] == 0)
    # Where the ball is, z-depth is near the 0.5 m camera distance minus the 0.1 m radius.
    assert abs(float(np.median(depth[alpha > 0.9])) - 0.4) < 0.05
    fld.render(cam, np.array([0.5, 0.5], np.float32))
    assert len(fld._cache) == 1  # the second view of the same keyframe reused the blend


@pytest.mark.slow
def test_fused_render_matches_the_torch_path_on_a_trained_head(trained):
    # Real inputs: a trained model and occupancy grid, whole views at the training size.
    from bake.fields.registry import load_field
    from formats.camera import Camera, Intrinsics, orbit_pose
    _, ckpt, _ = trained
    fld = load_field(ckpt, "cpu")
    assert fld.implementation == "fused"
    for yaw, expr in ((0.0, [0.0, 0.0]), (25.0, [0.8, 0.3])):
        cam = Camera(Intrinsics.from_fov(30.0, 64, 64), orbit_pose(yaw, 5.0, 0.5))
        w = np.array(expr, np.float32)
        fld.implementation = "fused"
        rgb, alpha, depth = fld.render(cam, w)
        fld.implementation = "torch"
        rgb_t, alpha_t, depth_t = fld.render(cam, w)
        assert alpha_t.max() > 0.9
        assert np.abs(rgb - rgb_t).max() <= 1e-3 and np.abs(alpha - alpha_t).max() <= 1e-3
        assert np.abs(depth - depth_t).max() <= 1e-3  # metres


def test_train_rejects_a_missing_dataset_in_one_line(tmp_path):
    out = tmp_path / "z.ckpt"
    r = _bake("train", tmp_path / "nope", "-o", out, "--steps", 1)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "dataset.json" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["train", "{ds}", "-o", "{tmp}/x.ckpt", "--steps", "0"], "--steps / --minutes must be positive"),
    (["train", "{ds}", "-o", "{tmp}/x.ckpt", "--rays", "0"], "rays_per_batch"),
    (["train", "{ds}", "-o", "{tmp}/missing/x.ckpt", "--steps", "1"], "output folder does not exist"),
    (["train", "{ds}", "-o", "{tmp}/x.ckpt", "--resume"], "no checkpoint at"),
    (["eval", "{tmp}/missing.ckpt", "{ds}"], "no such checkpoint"),
    (["eval", "{tmp}/bad.ckpt", "{ds}"], "not a loadable checkpoint"),
    (["eval", "{tmp}/missing.ckpt", "{ds}", "--edge", "-1"], "--edge"),
])
def test_train_and_eval_usage_errors_exit_2(tmp_path, args, message):
    ds = write_toy_dataset(tmp_path / "toy", n_frames=4, size=16)
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    before = set(tmp_path.iterdir())
    r = _bake(*[a.replace("{ds}", str(ds)).replace("{tmp}", str(tmp_path)) for a in args])
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert set(tmp_path.iterdir()) == before


def test_nerf_config_checks_itself_when_built_in_python():
    from bake.nerf.config import NerfConfig, preset
    for kwargs, message in [({"levels": 0}, "levels"), ({"finest_res": 8}, "finest_res"), ({"lr": 0.0}, "lr"),
                            ({"occ_threshold": 1.5}, "occ_threshold"), ({"face_fraction": 2.0}, "face_fraction"),
                            ({"rays_per_batch": 2}, "rays_per_batch"), ({"hidden": 64.5}, "hidden")]:
        with pytest.raises(ValueError, match=message):
            NerfConfig(**kwargs)
    with pytest.raises(ValueError, match="rays_per_batch"):
        preset("cpu", rays_per_batch=-1)
    assert NerfConfig.from_dict(NerfConfig().to_dict()) == NerfConfig()


def _first_step_loss(root) -> float:
    from bake.data.load import load_dataset
    from bake.nerf.config import preset
    from bake.nerf.trainer import Trainer
    trainer = Trainer(preset("tiny", rays_per_batch=512), load_dataset(root), 48, torch.device("cpu"))
    return trainer.step(0.1)[0]


def test_padding_outside_the_valid_quad_carries_no_loss(tmp_path):
    # Two copies of a dataset that differ only in the right quarter of every image, which the
    # frames' `valid` quad marks as padding (where a crop left the video): the training loss must
    # not see the difference. A control without the quad shows the difference is visible.
    import shutil
    from bake.data.dataset import save_dataset
    from bake.data.load import load_dataset
    a = write_toy_dataset(tmp_path / "a", n_frames=12)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    rng = np.random.default_rng(1)
    ds_b = load_dataset(b)
    for f in ds_b.frames:
        img = cv2.imread(str(b / f.image))
        img[:, 36:] = rng.integers(0, 256, img[:, 36:].shape)
        cv2.imwrite(str(b / f.image), img)
    assert _first_step_loss(a) != _first_step_loss(b)  # control: the noise is seen without a quad
    for root in (a, b):
        ds = load_dataset(root)
        for f in ds.frames:
            f.valid = np.array([[0.0, 0.0], [36.0, 0.0], [36.0, 48.0], [0.0, 48.0]])
        save_dataset(ds)
        assert load_dataset(root).frames[3].valid is not None  # round trip through dataset.json
    assert _first_step_loss(a) == _first_step_loss(b)


def test_a_malformed_valid_quad_is_a_one_line_dataset_error(tmp_path):
    import json
    from bake.data.dataset import DatasetError
    from bake.data.load import load_dataset
    root = write_toy_dataset(tmp_path / "t", n_frames=4)
    doc = json.loads((root / "dataset.json").read_text())
    doc["frames"][1]["valid"] = [[0, 0], [1, 1]]
    (root / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="valid"):
        load_dataset(root)
