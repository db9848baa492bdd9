"""The person segmenter: Google's MediaPipe selfie segmentation model, shipped in this package.

mediapipe 1.x ships no segmentation model, and GrabCut alone cannot tell black hair from a dark
room (on d14 it left most of the hair out of the mask). ``models/selfie_segmentation.tflite`` is
the general (256x256, square) selfie model as released in the Apache-2.0 wheel
``mediapipe==0.10.21`` (``mediapipe/modules/selfie_segmentation/``; licence text in
``models/LICENSE-mediapipe-apache-2.0.txt``). That copy carries the Tasks metadata, so mediapipe
1.x's ``ImageSegmenter`` runs it as is. It gives one channel: the probability that a pixel shows
a person (hair, face, neck, shoulders, clothes); ``mask.head_mask`` cuts the head out of it.
The file's sha256 is checked on load: a different file is refused, never silently used.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bake.track.model import MediapipeTask, TrackerUnavailable, _quiet_native_stderr

SEGMENTER_SHA256 = "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"
SEGMENTER_SIZE = 249_505


def segmenter_path() -> Path:
    """Path of the bundled ``selfie_segmentation.tflite`` after checking its size and sha256."""
    path = Path(__file__).resolve().parent / "models" / "selfie_segmentation.tflite"
    if not path.is_file():
        raise TrackerUnavailable(f"{path} is missing: reinstall portrait4d")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != SEGMENTER_SIZE or digest != SEGMENTER_SHA256:
        raise TrackerUnavailable(f"{path}: unexpected model file (sha256 {digest[:12]}..., expected "
                                 f"{SEGMENTER_SHA256[:12]}...); reinstall portrait4d")
    return path


class Segmenter(MediapipeTask):
    """mediapipe ImageSegmenter in IMAGE mode (each frame on its own, so the result does not
    depend on which thread saw which frame before). Not thread-safe: one per thread. A context
    manager (``MediapipeTask``)."""

    def __init__(self):
        super().__init__()
        vision = self._vision
        opts = vision.ImageSegmenterOptions(
            base_options=self._base_options(model_asset_path=str(segmenter_path())),
            running_mode=vision.RunningMode.IMAGE, output_confidence_masks=True, output_category_mask=False)
        with _quiet_native_stderr():
            self._task = vision.ImageSegmenter.create_from_options(opts)
            self._task.segment(self._image(np.zeros((8, 8, 3), np.uint8)))  # set-up logs on the first frame

    def person(self, rgb: np.ndarray) -> np.ndarray:
        """float32 [H, W] in [0, 1]: the probability that each pixel of ``rgb`` (uint8 [H, W, 3])
        shows a person."""
        res = self._task.segment(self._image(rgb))
        p = np.asarray(res.confidence_masks[0].numpy_view(), dtype=np.float32).reshape(rgb.shape[:2])
        return p.copy()
