"""Readers that turn other face-avatar datasets into a ``bake.data.dataset.Dataset`` in memory.

``load_foreign(path) -> Dataset | None`` recognises:

NeRFace (Gafni et al. 2021, gafniguy/4D-Facial-Avatars, ``nerf/load_flame.py``)::

    DIR/transforms_{train,val,test}.json
        {"camera_angle_x": rad, "intrinsics": [fx, fy, cx, cy] | null,
         "frames": [{"file_path": "./train/f_0000", "transform_matrix": 4x4,
                     "expression": [76], "bbox": [y0, y1, x0, x1] (optional, fractions)}]}
    DIR/<file_path>.png

  ``intrinsics`` are fx, fy in pixels and cx, cy as fractions of the image size (rays go through
  ``(i - W*cx)/fx`` at pixel index i); without them the focal comes from ``camera_angle_x``.
  NeRFace has no masks (it models the background with one image): frames get ``mask = ""`` and
  ``extra["has_masks"] = False``. The three files become the split, in file order.

NeRFBlendShape (Gao et al. 2022, USTC3DV/NeRFBlendShape-code, ``nerf/provider.py``)::

    DIR/transforms.json
        {"h", "w", "fx", "fy", "cx", "cy" (pixels),
         "frames": [{"img_id": int, "transform_matrix": 4x4, "exp_ori": [46], ...}]}

  Frames are sorted by ``img_id``; the last 500 are the test set when there are more than 1000
  (the paper's protocol), otherwise ``default_split``. The released code loads no images, so the
  image of ``img_id`` k is looked for as ``ori_imgs/k.jpg|png``, ``images/k.jpg|png``,
  ``k.jpg|png`` (first found) and the mask as ``parsing/k.png``, ``masks/k.png`` (taken as-is,
  non-zero = foreground; a colour-coded face-parsing map needs converting first).

Both store ``transform_matrix`` as camera -> world in the NeRF/OpenGL convention (x right, y up,
z backwards) with the tracked face model's space as the world. The pose we keep is
``inv(c2w @ diag(1, -1, -1, 1))``: head -> camera in OpenCV axes. The world is taken as the head
frame as is: its axes match ours (+y up, +z out of the face) for both trackers, but its origin and
unit are the tracker's (not the head centre in metres), which training tolerates but view ranges
derived from it inherit. Expressions keep their tracker coefficients, named ``nerface_0..75`` /
``nerfblendshape_0..45`` (no semantic names exist; see ``bake.track.expression_map``).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from bake.data.dataset import Dataset, DatasetError, Frame, default_split
from formats.camera import Intrinsics

GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])
NERFACE_FPS = 25.0  # NeRFace's videos are 25 fps; their json stores no rate
NERFBLENDSHAPE_FPS = 25.0


def c2w_gl_to_pose(c2w) -> np.ndarray:
    """[4, 4] NeRF-convention camera->world -> [4, 4] head->camera (OpenCV axes)."""
    m = np.asarray(c2w, dtype=np.float64)
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise ValueError(f"transform_matrix has shape {m.shape}, expected 4x4 finite numbers")
    return np.linalg.inv(m @ GL_TO_CV)


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not readable JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list):
        raise DatasetError(f"{path}: no 'frames' list")
    return doc


def _image_size(path: Path) -> tuple[int, int]:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"cannot read image {path}")
    return img.shape[1], img.shape[0]


def load_nerface(root: Path) -> Dataset:
    frames, split = [], {}
    intr_raw, angle_x = None, None
    for s in ("train", "val", "test"):
        path = root / f"transforms_{s}.json"
        doc = _read_json(path)
        split[s] = []
        intr_raw = doc.get("intrinsics") or intr_raw
        angle_x = doc.get("camera_angle_x", angle_x)
        for fr in doc["frames"]:
            try:
                rel = str(fr["file_path"]) + ".png"
                pose = c2w_gl_to_pose(fr["transform_matrix"])
                e = np.asarray(fr["expression"], dtype=np.float32)
            except (KeyError, TypeError, ValueError) as exc:
                raise DatasetError(f"{path}: frame {len(split[s])} malformed ({type(exc).__name__}: {exc})") from None
            i = len(frames)
            split[s].append(i)
            frames.append(Frame(i, i / NERFACE_FPS, rel, "", pose, e))
    if not frames:
        raise DatasetError(f"{root}: NeRFace dataset with no frames")
    dims = {f.expression.shape for f in frames}
    if len(dims) != 1:
        raise DatasetError(f"{root}: expressions of different lengths {sorted(dims)}")
    w, h = _image_size(root / frames[0].image)
    if intr_raw:
        fx, fy, cx, cy = (float(v) for v in intr_raw)
        if fx <= 0 or fy <= 0:
            raise DatasetError(f"{root}: intrinsics {intr_raw} have a non-positive focal; "
                               f"this reader expects fx, fy > 0")
        if cx <= 1.5 and cy <= 1.5:  # fractions of the image size at pixel-index origin
            cx, cy = cx * w + 0.5, cy * h + 0.5
    elif angle_x is not None:
        fx = fy = 0.5 * w / np.tan(0.5 * float(angle_x))
        cx, cy = w / 2, h / 2
    else:
        raise DatasetError(f"{root}: neither 'intrinsics' nor 'camera_angle_x' in the transforms files")
    dim = frames[0].expression.shape[0]
    return Dataset(root, w, h, NERFACE_FPS, Intrinsics(fx, fy, cx, cy, w, h), f"nerface-{dim}",
                   [f"nerface_{k}" for k in range(dim)], frames, split,
                   {"producer": "NeRFace (converted on the fly)", "has_masks": False,
                    "fps_assumed": True})


def _first_existing(root: Path, candidates: list[str]) -> str:
    for c in candidates:
        if (root / c).is_file():
            return c
    return ""


def load_nerfblendshape(root: Path) -> Dataset:
    path = root / "transforms.json"
    doc = _read_json(path)
    try:
        w, h = int(doc["w"]), int(doc["h"])
        intr = Intrinsics(float(doc["fx"]), float(doc["fy"]), float(doc["cx"]), float(doc["cy"]), w, h)
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: missing/invalid h, w, fx, fy, cx, cy ({type(exc).__name__}: {exc})") from None
    try:
        raw = sorted(doc["frames"], key=lambda d: int(d["img_id"]))
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{path}: every frame needs an integer 'img_id'") from None
    frames, has_masks = [], True
    for i, fr in enumerate(raw):
        k = int(fr["img_id"])
        try:
            pose = c2w_gl_to_pose(fr["transform_matrix"])
            e = np.asarray(fr["exp_ori"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: frame img_id={k} malformed ({type(exc).__name__}: {exc})") from None
        img = _first_existing(root, [f"ori_imgs/{k}.jpg", f"ori_imgs/{k}.png", f"images/{k}.jpg",
                                     f"images/{k}.png", f"{k}.jpg", f"{k}.png"])
        if not img:
            raise DatasetError(f"{root}: no image for img_id {k} (looked in ori_imgs/, images/, ./)")
        mask = _first_existing(root, [f"parsing/{k}.png", f"masks/{k}.png"])
        has_masks &= bool(mask)
        frames.append(Frame(i, i / NERFBLENDSHAPE_FPS, img, mask, pose, e))
    if not frames:
        raise DatasetError(f"{path}: no frames")
    dims = {f.expression.shape for f in frames}
    if len(dims) != 1:
        raise DatasetError(f"{path}: exp_ori of different lengths {sorted(dims)}")
    n = len(frames)
    if n > 1000:
        val = list(range(10, n - 500, 20))  # as default_split: every 20th of the head
        val_set = set(val)
        split = {"train": [i for i in range(n - 500) if i not in val_set], "val": val,
                 "test": list(range(n - 500, n))}
    else:
        split = default_split(n)
    dim = frames[0].expression.shape[0]
    return Dataset(root, w, h, NERFBLENDSHAPE_FPS, intr, f"nerfblendshape-{dim}",
                   [f"nerfblendshape_{k}" for k in range(dim)], frames, split,
                   {"producer": "NeRFBlendShape (converted on the fly)", "has_masks": has_masks,
                    "fps_assumed": True})


def load_foreign(path) -> Dataset | None:
    """The dataset at ``path`` if it is a NeRFace or NeRFBlendShape directory, else None.
    Raises DatasetError (one line) when it looks like one of them but cannot be read."""
    root = Path(path)
    if not root.is_dir():
        return None
    if (root / "dataset.json").is_file():
        return None  # ours: bake.data.dataset.read_dataset_json
    if all((root / f"transforms_{s}.json").is_file() for s in ("train", "val", "test")):
        return load_nerface(root)
    if (root / "transforms.json").is_file():
        return load_nerfblendshape(root)
    return None
