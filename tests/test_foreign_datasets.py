"""bake.data.foreign on tiny NeRFace / NeRFBlendShape directories written here."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from bake.data.dataset import DatasetError
from bake.data.foreign import c2w_gl_to_pose, load_foreign
from formats.camera import pixel_rays, Camera

RNG = np.random.default_rng(0)


def _c2w_gl(eye) -> np.ndarray:
    """NeRF-convention camera->world looking at the origin from ``eye`` (y up)."""
    eye = np.asarray(eye, float)
    back = eye / np.linalg.norm(eye)  # +z of a GL camera points away from what it sees
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, eye
    return m


def _img(path, w=40, h=30, value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = RNG.integers(0, 255, (h, w, 3), dtype=np.uint8) if value is None else np.full((h, w, 3), value, np.uint8)
    cv2.imwrite(str(path), img)
    return img


def test_c2w_conversion_sees_the_origin_in_front():
    eye = [0.1, 0.05, 0.5]
    pose = c2w_gl_to_pose(_c2w_gl(eye))
    origin_cam = pose[:3, 3]  # head origin in OpenCV camera coordinates
    assert origin_cam[2] == pytest.approx(np.linalg.norm(eye)) and np.allclose(origin_cam[:2], 0, atol=1e-12)
    # head +y (up) must point to image up (camera -y) for an upright camera.
    assert (pose[:3, :3] @ [0, 1, 0])[1] < 0
    assert np.allclose(np.linalg.inv(pose)[:3, 3], eye)


def _nerface(root, fx_frac=True):
    splits = {"train": 3, "val": 1, "test": 2}
    eyes = {}
    for s, n in splits.items():
        frames = []
        for i in range(n):
            rel = f"./{s}/f_{i:04d}"
            _img(root / f"{rel}.png")
            eye = [0.05 * i, 0.0, 0.6]
            eyes[(s, i)] = eye
            frames.append({"file_path": rel, "transform_matrix": _c2w_gl(eye).tolist(),
                           "expression": RNG.normal(0, 1, 76).tolist(), "bbox": [0.0, 1.0, 0.0, 1.0]})
        doc = {"camera_angle_x": 0.5, "frames": frames,
               "intrinsics": [60.0, 61.0, 0.5, 0.45] if fx_frac else None}
        (root / f"transforms_{s}.json").write_text(json.dumps(doc))
    return eyes


def test_nerface_dir(tmp_path):
    eyes = _nerface(tmp_path)
    ds = load_foreign(tmp_path)
    assert ds is not None and len(ds.frames) == 6
    assert ds.split == {"train": [0, 1, 2], "val": [3], "test": [4, 5]}
    assert (ds.width, ds.height) == (40, 30)
    k = ds.intrinsics
    assert (k.fx, k.fy) == (60.0, 61.0)
    assert k.cx == pytest.approx(0.5 * 40 + 0.5) and k.cy == pytest.approx(0.45 * 30 + 0.5)
    assert ds.expression_dim == 76 and ds.expression_space == "nerface-76"
    assert ds.extra["has_masks"] is False and all(f.mask == "" for f in ds.frames)
    assert np.allclose(np.linalg.inv(ds.frames[4].pose)[:3, 3], eyes[("test", 0)])
    assert ds.load_image(1).shape == (30, 40, 3)
    # Without intrinsics the focal comes from camera_angle_x.
    d2 = tmp_path / "b"
    _nerface(d2, fx_frac=False)
    k2 = load_foreign(d2).intrinsics
    assert k2.fx == pytest.approx(0.5 * 40 / np.tan(0.25)) and k2.cx == 20


def test_nerface_centre_ray_matches_their_convention(tmp_path):
    # NeRFace's ray through pixel index (i, j) has direction ((i - W*cx)/fx, -(j - H*cy)/fy, -1)
    # in GL camera axes; ours through the same pixel must be the same ray.
    _nerface(tmp_path)
    ds = load_foreign(tmp_path)
    cam = Camera(ds.intrinsics, np.linalg.inv(ds.frames[0].pose))
    _, dirs = pixel_rays(cam)
    i, j = 7, 22
    d_gl = np.array([(i - 40 * 0.5) / 60.0, -(j - 30 * 0.45) / 61.0, -1.0])
    c2w = np.linalg.inv(ds.frames[0].pose) @ np.diag([1.0, -1.0, -1.0, 1.0])
    want = c2w[:3, :3] @ d_gl
    got = dirs[j, i]
    assert np.allclose(got / np.linalg.norm(got), want / np.linalg.norm(want), atol=1e-9)


def _nerfblendshape(root, n=12, masks=True):
    frames = []
    for k in range(n):
        _img(root / "ori_imgs" / f"{k}.jpg", 32, 32)
        if masks:
            (root / "parsing").mkdir(exist_ok=True)
            cv2.imwrite(str(root / "parsing" / f"{k}.png"), np.full((32, 32), 255, np.uint8))
        frames.append({"img_id": k, "aud_id": k, "transform_matrix": _c2w_gl([0.0, 0.01 * k, 0.35]).tolist(),
                       "exp_ori": RNG.uniform(0, 1, 46).tolist()})
    RNG.shuffle(frames)  # the reader sorts by img_id
    doc = {"h": 32, "w": 32, "fx": 900.0, "fy": 901.0, "cx": 16.0, "cy": 15.0, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(doc))


def test_nerfblendshape_dir(tmp_path):
    _nerfblendshape(tmp_path)
    ds = load_foreign(tmp_path)
    assert ds is not None and len(ds.frames) == 12
    assert [f.image for f in ds.frames] == [f"ori_imgs/{k}.jpg" for k in range(12)]
    assert ds.expression_dim == 46 and ds.expression_space == "nerfblendshape-46"
    assert ds.intrinsics.fx == 900.0 and ds.intrinsics.cy == 15.0
    assert np.allclose(np.linalg.inv(ds.frames[5].pose)[:3, 3], [0.0, 0.05, 0.35])
    assert ds.extra["has_masks"] and ds.load_mask(3).min() == 255
    assert sorted(sum(ds.split.values(), [])) == list(range(12))


def test_not_foreign_and_broken(tmp_path):
    assert load_foreign(tmp_path) is None
    assert load_foreign(tmp_path / "missing") is None
    (tmp_path / "transforms.json").write_text("{not json")
    with pytest.raises(DatasetError, match="JSON"):
        load_foreign(tmp_path)
    (tmp_path / "transforms.json").write_text(json.dumps({"h": 4, "w": 4, "fx": 1, "fy": 1, "cx": 2, "cy": 2,
                                                          "frames": [{"img_id": 0, "transform_matrix": np.eye(4).tolist(),
                                                                      "exp_ori": [0.0] * 46}]}))
    with pytest.raises(DatasetError, match="no image"):
        load_foreign(tmp_path)
