"""bake eval's metrics on masks and images built here."""

import cv2
import numpy as np

from bake.nerf.metrics import edge_band, psnr


def _disk(h=64, w=80, r=20.5):
    y, x = np.mgrid[0:h, 0:w]
    return (y - 30) ** 2 + (x - 40) ** 2 <= r * r


def test_edge_band_splits_the_mask_by_distance_to_its_outline():
    m = _disk()
    for px in (1, 3, 6):
        inner, band = edge_band(m, px)
        assert not (inner & band).any() and ((inner | band) == m).all()
        # Chessboard distance of each mask pixel to the nearest pixel outside the mask.
        dist = cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_C, 3)
        assert (dist[band] <= px).all() and (dist[inner] > px).all(), px
        assert inner.any() and band.any()
    inner, band = edge_band(m, 0)
    assert (inner == m).all() and not band.any()


def test_the_image_border_is_no_outline():
    m = np.zeros((40, 40), bool)
    m[20:, 10:30] = True  # a neck running off the bottom of the frame
    inner, band = edge_band(m, 2)
    assert inner[38:, 12:28].all()  # rows at the border stay interior
    assert band[20:22, 10:30].all() and band[25:, 10:12].all()


def test_the_masked_error_is_the_pixel_weighted_mix_of_interior_and_band():
    rng = np.random.default_rng(0)
    m = _disk()
    gt = rng.random(m.shape + (3,))
    pred = gt + rng.normal(0, 0.02, gt.shape)
    inner, band = edge_band(m, 3)
    pred[band] += 0.2  # the outline wrong, the interior nearly right
    mse = lambda mask: 10 ** (-psnr(pred, gt, mask) / 10)  # noqa: E731
    mix = (mse(inner) * inner.sum() + mse(band) * band.sum()) / m.sum()
    assert np.isclose(mse(m), mix, rtol=1e-9)
    assert psnr(pred, gt, inner) > psnr(pred, gt, m) + 8 > psnr(pred, gt, band) + 8
