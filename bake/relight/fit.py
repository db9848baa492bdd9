"""The capture's light fitted over baked tiles (format 1.2's ``lighting``): luminance = albedo x
(an ambient + one key lobe), over the dominant material only (skin, picked by chromaticity, so
one albedo holds), robust to shadows, highlights and what the model does not hold (IRLS, Huber
then Tukey weights).

Shapes: a sample is (lum float [H, W], normals float [H, W, 3] head frame, weight float [H, W]
in [0, 1], 0 = not a surface pixel[, chroma float [H, W, 3]]); sh float64 [9] in
formats.lighting's order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from formats.lighting import angles, direction, key_shading, lobe, oct_decode, sh_basis
from formats.p4d import downscale_depth

LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class FitConfig:
    iterations: int = 30
    """IRLS rounds of each fit (half Huber, half Tukey); on the synthetic head the key's
    direction settles by ~30"""
    huber: float = 1.345
    """Huber threshold in robust standard deviations (1.4826 x median absolute residual): the
    first rounds, which find the bulk of the skin"""
    tukey: float = 4.685
    """Tukey biweight cut-off for the later rounds: pixels this far off (hair, brows, lips,
    highlights, cast shadows) get no weight at all, where Huber would still let them pull"""
    min_alpha: float = 0.98
    """pixels less opaque than this (the silhouette's mixed pixels) are left out"""
    chroma_tol: float = 0.04
    """only the dominant material is fitted: pixels whose chromaticity r, g, b / (r + g + b) is
    within this of the median over all samples (skin; hair, brows, lips, eyes, clothes left out).
    One albedo is then nearly true; with every material the synthetic capture's bake fitted a
    key twice too strong from 5 degrees too low (0 = no selection)"""


def luminance(rgb: np.ndarray) -> np.ndarray:
    """float [..., 3] -> [...] (Rec. 601 weights)."""
    return np.asarray(rgb, np.float64) @ LUMA


def _irls(a: np.ndarray, y: np.ndarray, w0: np.ndarray, cfg: FitConfig) -> tuple[np.ndarray, np.ndarray]:
    """Robust argmin_c of the residual y - a @ c: a [N, P], y [N], w0 [N]; (c, final weights)."""
    w = w0.copy()
    c = np.zeros(a.shape[1])
    for i in range(cfg.iterations):
        sw = np.sqrt(w)
        c = np.linalg.lstsq(a * sw[:, None], y * sw, rcond=None)[0]
        r = np.abs(y - a @ c)
        scale = 1.4826 * np.median(r[w > 0]) + 1e-9
        if i < cfg.iterations // 2:
            w = w0 * np.minimum(1.0, cfg.huber * scale / np.maximum(r, 1e-12))
        else:
            w = w0 * np.maximum(1.0 - (r / (cfg.tukey * scale)) ** 2, 0.0) ** 2
    return c, w


def tile_sample(rgb: np.ndarray, alpha: np.ndarray, normals: np.ndarray, cfg: FitConfig = FitConfig()):
    """One tile -> a fit sample (lum, normals, weight, chroma): premultiplied colour
    un-premultiplied to luminance, the opaque pixels with a normal as weight 1, and the colour's
    chromaticity [H, W, 3]. rgb float [H, W, 3] in [0, 1], alpha float [H, W]."""
    alpha = np.asarray(alpha, np.float64)
    rgb = np.asarray(rgb, np.float64)
    keep = (alpha >= cfg.min_alpha) & (np.abs(normals).sum(-1) > 0)
    lum = luminance(rgb) / np.maximum(alpha, 1e-6)
    chroma = rgb / np.maximum(rgb.sum(-1, keepdims=True), 1e-6)
    return lum, normals, keep.astype(np.float64), chroma


def stored_sample(rgb: np.ndarray, alpha: np.ndarray, codes: np.ndarray, scale: int, cfg: FitConfig = FitConfig()):
    """A fit sample from stored tiles: colour uint8 [H, W, 3] and alpha uint8 [H, W] point-sampled
    at the normal tile's samples (the depth rule), normals decoded from its codes [h, w, 3]."""
    rgb = downscale_depth(np.asarray(rgb), scale).astype(np.float64) / 255.0
    alpha = downscale_depth(np.asarray(alpha), scale).astype(np.float64) / 255.0
    return tile_sample(rgb, alpha, oct_decode(np.asarray(codes)[..., :2]), cfg)


def _dominant_material(samples, tol: float) -> list:
    """Samples (lum, normals, weight, chroma [H, W, 3]) with the weight kept only where the
    chromaticity is within ``tol`` (max over channels) of the median of all weighted pixels."""
    chroma = np.concatenate([c[w > 0] for _, _, w, c in samples])
    if not len(chroma) or tol <= 0:
        return [s[:3] for s in samples]
    med = np.median(chroma, axis=0)
    return [(lum, n, w * (np.abs(c - med).max(-1) < tol)) for lum, n, w, c in samples]


def fit_light(samples, cfg: FitConfig = FitConfig()) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """(sh [9], key (yaw, pitch, amount, wrap)) from samples (lum, normals, weight[, chroma]; with
    chroma, the dominant material's pixels only: ``FitConfig.chroma_tol``): the capture's light as an ambient that is a mean
    plus a vertical gradient (sky above, ground below: Y00 and Y1-1) and one key lobe k_w(n.d)
    (``formats.lighting``), luminance = albedo x that, with one albedo and robust weights. The
    key's direction is searched (a sphere of directions, then finer around the best; the wrap is
    held at ``WRAPS``), the rest solved by weighted least squares; sh is the ambient plus the
    key's order-2 projection, scaled to a mean light of 1.

    Why this model (synthetic head, key at yaw 23.1, pitch 26.8, wrap 0.25, sky 0.38 + 0.12 y):
    a general order-2 fit put the key at pitch 36 (the sky's gradient read as key); an ambient
    of all of bands 0-1 trades its x and z gradients against the key's direction along a flat
    valley (yaw 42 fitted as well as 23); mean + vertical gradient found (24.4, 26.1, wrap 0.25)."""
    if samples and len(samples[0]) == 4:  # chromaticity given: the dominant material only
        samples = _dominant_material(samples, cfg.chroma_tol)
    ys, ns, ws = [], [], []
    for lum, n, wgt in samples:
        keep = np.asarray(wgt) > 0
        ys.append(np.asarray(lum, np.float64)[keep])
        ns.append(np.asarray(n, np.float64)[keep])
        ws.append(np.asarray(wgt, np.float64)[keep])
    y, n, w0 = np.concatenate(ys), np.concatenate(ns), np.concatenate(ws)
    if len(y) < 9:
        raise ValueError(f"{len(y)} surface pixels are too few to fit the light")
    amb_basis = sh_basis(n)[:, AMBIENT]
    pick = np.random.default_rng(0).choice(len(y), size=min(len(y), 20000), replace=False)
    sub_n, sub_y = n[pick], y[pick]

    def search(w: np.ndarray, start: np.ndarray | None, wraps) -> tuple[np.ndarray, float]:
        """The key (direction, wrap) that explains the picked pixels best under weights w: a
        sphere of directions (or around ``start``), then finer grids of yaw and pitch."""
        sw = np.sqrt(w[pick])
        amb = amb_basis[pick] * sw[:, None]

        def score(d: np.ndarray, wrap: float) -> float:
            k = key_shading(sub_n, d, wrap) * sw
            a = np.column_stack([amb, k])
            c = np.linalg.lstsq(a, sub_y * sw, rcond=None)[0]
            if c[-1] < 0:
                return np.inf
            r = sub_y * sw - a @ c
            return float(r @ r)

        best = (np.inf, None, 0.0)
        cands = _sphere(600) if start is None else [start]
        for d in cands:
            for wrap in wraps:
                e = score(d, wrap)
                if e < best[0]:
                    best = (e, d, wrap)
        if best[1] is None:
            raise ValueError("no key light explains the tiles (every candidate needs a negative amount)")
        for step in (4.0, 1.0, 0.25):  # degrees: refine yaw and pitch on finer grids
            yaw0, pitch0 = angles(best[1])
            for i in range(-4, 5):
                for j in range(-4, 5):
                    d = direction(yaw0 + i * step, min(max(pitch0 + j * step, -89.9), 89.9))
                    for wrap in wraps:
                        e = score(d, wrap)
                        if e < best[0]:
                            best = (e, d, wrap)
        return best[1], best[2]

    # Rounds: the key searched under the weights of the last round's robust fit of this very
    # model (the first round: every pixel alike). Weights from a general SH fit would be wrong
    # here: SH cannot hold a lobe's edge, so its robust weights drop the terminator, which is
    # where the key's direction and wrap show.
    w, d = w0, None
    best = (np.inf, None, None, None)
    for round_ in range(ROUNDS):
        d, wrap = search(w, d if round_ else None, WRAPS)
        a = np.column_stack([amb_basis, key_shading(n, d, wrap)])
        c, w = _irls(a, y, w0, cfg)
        # Rounds can settle in different basins (a strong key from low with little ambient, or
        # the true one): keep the round whose fit has the least median absolute residual, a
        # score the weights of no single round decide (least median of squares).
        score = float(np.median(np.abs(y - a @ c)[w0 > 0]))
        if score < best[0]:
            best = (score, d, wrap, c)
    _, d, wrap, c = best
    amount = max(float(c[-1]), 0.0)
    sh = amount * lobe(d, wrap)
    sh[AMBIENT] += c[:-1]
    if not sh[0] > 0:
        raise ValueError("the fitted light has no positive mean: the tiles do not look lit")
    scale = 1.0 / (sh[0] * 0.282095)
    yaw, pitch = angles(d)
    return sh * scale, (yaw, pitch, amount * scale, wrap)


# The key lobe's wrap is not fitted: wrap and the key's pitch trade off along a flat valley of
# the residual (synthetic head, keyframe 0: exact 8-bit colour fitted (22.9, 25.1, wrap 0.25),
# the same colour through webp q80 (20.4, 14.3, wrap 0), at 1/4 (20.6, 15.1, wrap 0)). With the
# wrap held at skin's 0.25 all of these agree within a degree (18.4, 20.8).
WRAPS = (0.25,)
FLAT_SH = np.eye(9)[0] / 0.282095  # a mean light of 1, nothing else
ROUNDS = 4  # key searches, each under the robust weights the previous one gave
AMBIENT = [0, 1]  # the SH terms of the fitted ambient: Y00 and Y1-1 (y)


def _sphere(n: int) -> np.ndarray:
    """n unit directions spread evenly over the sphere (Fibonacci lattice) [n, 3]."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = math.pi * (3.0 - math.sqrt(5.0)) * i
    r = np.sqrt(1.0 - z * z)
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def lighting_meta(sh: np.ndarray, key) -> dict:
    """meta.lighting of a fitted light, rounded so the file states stable numbers."""
    return {"sh": np.round(np.asarray(sh, np.float64), 6).tolist(),
            "key": [round(float(key[0]), 4), round(float(key[1]), 4), round(float(key[2]), 6), float(key[3])]}


def fit_tiles(tile, n_keyframes: int, n_views: int, scale: int, max_keyframes: int = 4,
              cfg: FitConfig = FitConfig()) -> dict:
    """meta.lighting fitted over every view of up to ``max_keyframes`` evenly spaced keyframes;
    ``tile(k, v, kind)`` gives the stored colour, alpha and normal codes (a writer's read-back or
    a reader). Where nothing can be fitted the light is flat (ambient 1, no key): the file still
    relights, a --light then adds a key of its strength."""
    ks = sorted({int(round(x)) for x in np.linspace(0, n_keyframes - 1, min(n_keyframes, max_keyframes))})
    samples = [stored_sample(tile(k, v, "color"), tile(k, v, "alpha"), tile(k, v, "normal"), scale, cfg)
               for k in ks for v in range(n_views)]
    try:
        return lighting_meta(*fit_light(samples, cfg))
    except ValueError:  # too few surface pixels (a tiny bake) or no light to find: a flat light
        return lighting_meta(FLAT_SH, (0.0, 0.0, 0.0, WRAPS[0]))
