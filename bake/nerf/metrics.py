"""Image metrics for ``bake eval``: PSNR, SSIM (Wang et al. 2004, Gaussian window), L1 — full image
and restricted to a mask. Images are float [H, W, 3] in [0, 1]."""

from __future__ import annotations

import math

import cv2
import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB (peak 1); ``mask`` [H, W] bool limits it to those pixels.

    >>> round(psnr(np.zeros((2, 2, 3)), np.full((2, 2, 3), 0.1)), 3)
    20.0
    """
    err = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    mse = float(err[mask].mean()) if mask is not None else float(err.mean())
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def edge_band(mask: np.ndarray, px: int) -> tuple[np.ndarray, np.ndarray]:
    """(interior, band) of a bool mask [H, W]: the interior is the mask eroded by ``px`` pixels
    (a (2 px + 1)^2 square, the image border counting as inside), the band the rest of the mask:
    its pixels within ``px`` (chessboard distance) of a pixel outside it. Disjoint; their union is
    the mask. ``bake eval`` reports PSNR on each, since a tracked mask's outline (hair, GrabCut
    edge) is noise no model can predict.

    >>> m = np.zeros((7, 7), bool); m[1:6, 1:6] = True
    >>> [int(x.sum()) for x in edge_band(m, 1)]
    [9, 16]
    """
    mask = np.asarray(mask, bool)
    if px <= 0:
        return mask.copy(), np.zeros_like(mask)
    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    inner = cv2.erode(mask.astype(np.uint8), k, borderType=cv2.BORDER_REPLICATE).astype(bool)
    return inner, mask & ~inner


def l1(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    err = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return float(err[mask].mean()) if mask is not None else float(err.mean())


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM [H, W] (mean over channels), 11x11 Gaussian window sigma 1.5."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    va, vb, cov = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
    return s.mean(-1) if s.ndim == 3 else s


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    s = ssim_map(a, b)
    return float(s[mask].mean()) if mask is not None else float(s.mean())
