"""player/kernels/ against its numpy twins (testkit/naive/), and against ray-traced truth."""

import numpy as np
import pytest

from formats.camera import Intrinsics, orbit_pose
from player import kernels as K
from player.kernels import blend as kblend, mesh as kmesh, pixels as kpixels, splat as ksplat
from testkit.naive import blend as n_blend, compositing as n_composite, decode as n_decode
from testkit.naive import splat as n_splat, views as n_views, reprojection as n_warp
from testkit.sphere_p4d import RADIUS, trace



def trace_sphere(yaw, pitch, intr, texture_seed=0):
    """Premultiplied RGBA uint8 [H, W, 4] and z-depth float32 [H, W] of a textured sphere with a
    small bump sphere in front of it (so some surface is occluded from some views):
    ``testkit.sphere_p4d.trace``, its texture shifted by ``texture_seed``."""
    return trace(yaw, pitch, intr, texture_seed)


def grid_sources(intr, yaws=(-10.0, 10.0), pitches=(-8.0, 8.0)):
    rgba, depth, poses = [], [], []
    for p in pitches:
        for y in yaws:
            c, d = trace_sphere(y, p, intr)
            rgba.append(c)
            depth.append(d)
            poses.append(orbit_pose(y, p, RADIUS))
    return np.stack(rgba), np.stack(depth), poses


def cams(intr, poses):
    arrs = [K.camera_arrays(intr, m) for m in poses]
    return tuple(np.ascontiguousarray(np.stack(a)) for a in zip(*arrs))


def erode(mask, n):
    for _ in range(n):
        m = np.pad(mask, 1)
        mask = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask


def psnr(a, b, mask=None):
    err = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = np.mean(err if mask is None else err[mask])
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (-30.0, 5.0), (12.5, -3.0), (40.0, 40.0), (-5.0, -90.0)])
def test_view_weights_match_twin_and_interpolate(yaw, pitch):
    yaws, pitches = np.array([-20.0, -10.0, 0.0, 10.0, 20.0]), np.array([-10.0, 0.0, 10.0])
    i, w = K.view_weights(yaws, pitches, yaw, pitch)
    ni, nw = n_views.view_weights(yaws, pitches, yaw, pitch)
    assert np.array_equal(i, ni)
    np.testing.assert_allclose(w, nw, atol=1e-6)
    assert abs(w.sum() - 1) < 1e-6 and (w >= 0).all()
    # The weighted view angles reproduce the (clamped) viewpoint: bilinear weights interpolate.
    vy = yaws[i % len(yaws)]
    vp = pitches[i // len(yaws)]
    assert abs((w * vy).sum() - np.clip(yaw, -20, 20)) < 1e-4
    assert abs((w * vp).sum() - np.clip(pitch, -10, 10)) < 1e-4


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (-13.0, 2.0), (-11.0, 5.0), (17.5, -9.0), (3.0, 1.0), (40.0, 4.0)])
def test_sharpened_view_weights_match_twin_and_favour_the_nearest(yaw, pitch):
    yaws, pitches = np.array([-20.0, -10.0, 0.0, 10.0, 20.0]), np.array([-10.0, 0.0, 10.0])
    g = 2.0
    i, w = K.view_weights(yaws, pitches, yaw, pitch, sharpen=g)
    ni, nw = n_views.view_weights(yaws, pitches, yaw, pitch, sharpen=g)
    assert np.array_equal(i, ni)
    np.testing.assert_allclose(w, nw, atol=1e-6)
    assert abs(w.sum() - 1) < 1e-6 and (w >= 0).all()
    _, wb = K.view_weights(yaws, pitches, yaw, pitch)
    # Stretched about the cell centre: the heaviest view gains, and a view within a quarter
    # cell (g = 2) of the viewpoint along an axis takes that axis alone.
    assert w.max() >= wb.max() - 1e-6
    ty = (np.clip(yaw, -20, 20) + 20) / 10 % 1
    tp = (np.clip(pitch, -10, 10) + 10) / 10 % 1
    used = int((w > 0).sum())
    expect = (1 if min(ty, 1 - ty) <= 0.25 else 2) * (1 if min(tp, 1 - tp) <= 0.25 else 2)
    assert used == expect, (w, ty, tp)
    # Still continuous: a tiny move changes the weights a little.
    _, w2 = K.view_weights(yaws, pitches, yaw + 1e-3, pitch, sharpen=g)
    assert np.abs(w2 - w).max() < 1e-3


def test_temporal_blend_matches_twin():
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (17, 23, 4), dtype=np.uint8) for _ in range(2))
    da, db = (np.where(rng.random((17, 23)) < 0.3, 0, rng.uniform(0.4, 0.8, (17, 23))).astype(np.float32)
              for _ in range(2))
    for t in (0.0, 0.37, 1.0):
        out, dout = np.empty_like(a), np.empty_like(da)
        K.temporal_blend(a, b, da, db, t, out, dout)
        ref, dref = n_blend.temporal_blend(a, b, da, db, t)
        assert np.array_equal(out, ref)
        np.testing.assert_allclose(dout, dref, rtol=1e-6)
    out, dout = np.empty_like(a), np.empty_like(da)
    K.temporal_blend(a, b, da, db, 0.0, out, dout)
    assert np.array_equal(out, a)
    # A box: only its rows and columns are written, exactly as the full blend writes them.
    ref, dref = n_blend.temporal_blend(a, b, da, db, 0.37)
    out, dout = np.full_like(a, 7), np.full_like(da, -1.0)
    K.temporal_blend(a, b, da, db, 0.37, out, dout, box=(3, 11, 5, 20))
    inside = np.zeros(da.shape, bool)
    inside[3:11, 5:20] = True
    assert np.array_equal(out[inside], ref[inside]) and (out[~inside] == 7).all()
    np.testing.assert_allclose(dout[inside], dref[inside], rtol=1e-6)
    assert (dout[~inside] == -1.0).all()
    # Row spans: per row only their columns (none where empty), the box's rows only.
    spans = np.array([[w0, w0 + 2 * y % 9] for y, w0 in enumerate(rng.integers(-2, 23, 17))], np.int32)
    spans[5] = (23, 0)  # an empty row
    spans[9] = (20, 30)  # past the edge: clamped
    out, dout = np.full_like(a, 7), np.full_like(da, -1.0)
    K.temporal_blend(a, b, da, db, 0.37, out, dout, box=(3, 11, 0, 23), spans=spans)
    inside = np.zeros(da.shape, bool)
    for y in range(3, 11):
        inside[y, max(spans[y, 0], 0):max(spans[y, 1], 0)] = True
    assert 20 < inside.sum() < 8 * 23 and not inside[5].any() and inside[9, 20:].all()
    assert np.array_equal(out[inside], ref[inside]) and (out[~inside] == 7).all()
    np.testing.assert_allclose(dout[inside], dref[inside], rtol=1e-6)
    assert (dout[~inside] == -1.0).all()
    with pytest.raises(ValueError, match="box"):
        K.temporal_blend(a, b, da, db, 0.5, out, dout, box=(0, 18, 0, 23))


def test_blends_hint_the_next_row_to_the_cache():
    # The blends prefetch the next row's span of every tile they read (``_prefetch_row``); the
    # hints change no pixel (the twin tests above) but ~5 % of a paced frame, so a refactor that
    # drops them must fail here rather than only in a benchmark. Checked in the LLVM IR, which
    # every CPU shares (the instruction it becomes is x86's prefetcht0, another CPU's own).
    from numba import njit
    for kernel in (kblend._temporal_blend, kblend._fade_blend):
        fresh = njit(kernel.py_func)  # compiled here: numba cannot show the IR of a kernel loaded from its cache
        fresh.compile(kernel.signatures[0])
        assert "call void @llvm.prefetch" in fresh.inspect_llvm(kernel.signatures[0]), kernel.__name__


def test_write_spans_unions_rows_and_records_what_the_buffer_holds():
    w = 10
    held = np.array([[2, 5], [w, 0], [0, 10], [w, 0]], np.int32)  # (W, 0): an empty row
    a = np.array([[3, 4], [1, 2], [w, 0], [w, 0]], np.int32)
    b = np.array([[6, 8], [w, 0], [4, 5], [w, 0]], np.int32)
    out = np.zeros_like(held)
    K.write_spans(held, (a, b), out)
    assert out.tolist() == [[2, 8], [1, 2], [0, 10], [w, 0]]  # old and new: cleared on the way
    assert held.tolist() == [[3, 8], [1, 2], [4, 5], [w, 0]]  # what the buffer holds now
    K.write_spans(held, (a,), out)
    assert out.tolist() == [[3, 8], [1, 2], [4, 5], [w, 0]] and held.tolist() == a.tolist()


@pytest.mark.parametrize("guided", [False, True])
@pytest.mark.parametrize("s,h,w", [(1, 9, 7), (2, 17, 23), (4, 37, 41), (4, 64, 64), (8, 29, 70), (8, 5, 6)])
def test_upsample_depth_matches_twin(s, h, w, guided):
    from formats.p4d import downscale_depth
    rng = np.random.default_rng(s * 1000 + h)
    y, x = np.mgrid[0:h, 0:w]
    full = (0.5 + 0.002 * x + 0.003 * y).astype(np.float32)
    full[(x - w / 2) ** 2 + (y - h / 2) ** 2 > (0.4 * min(h, w)) ** 2] = 0  # a silhouette
    full[: h // 3, : w // 3] += np.float32(0.2)  # a depth edge
    full[rng.random((h, w)) < 0.05] *= np.float32(1.03)  # spreads near the smoothness bound
    small = downscale_depth(full, s)
    # The alpha: the depth's silhouette moved (grown on one side, cut on the other), and a hole.
    inside = (x - w / 2 - 1.5) ** 2 + (y - h / 2 + 0.7) ** 2 <= (0.4 * min(h, w)) ** 2
    inside[h // 2: h // 2 + 2, w // 2] = False
    alpha = np.where(inside, rng.integers(1, 256, (h, w)), 0).astype(np.uint8) if guided else None
    spans = np.empty((h, 2), np.int32)
    got = K.upsample_depth(small, s, h, w, spans=spans, alpha=alpha)
    ref = n_decode.upsample_depth(small, s, h, w, alpha=alpha)
    assert got.shape == (h, w) and got.dtype == np.float32
    assert np.array_equal(got, ref), np.abs(got - ref).max()
    # Only the span around each row's surface is computed: the rest must still come out 0.
    np.testing.assert_array_equal(spans, n_decode.row_spans(ref > 0))
    if min(h, w) > 8:  # the silhouette leaves empty rows and rows narrower than the tile
        assert (spans[:, 0] == w).any() and (spans[:, 0] > 0).any()
    if s == 1 and not guided:
        assert np.array_equal(got, small)  # s = 1: the samples themselves
    if guided:
        assert not got[alpha == 0].any()


@pytest.mark.parametrize("h,w", [(7, 5), (24, 33), (64, 64)])
def test_interleave_rgba_matches_twin(h, w):
    rng = np.random.default_rng(h * w)
    y, x = np.mgrid[0:h, 0:w]
    inside = (x - w / 2) ** 2 + (y - h / 2) ** 2 < (0.3 * min(h, w)) ** 2
    color = np.where(inside[..., None], rng.integers(0, 256, (h, w, 3)), 0).astype(np.uint8)
    color[rng.random((h, w)) < 0.03, rng.integers(0, 3)] = 5  # lone colour bytes outside the alpha
    alpha = np.where(inside, rng.integers(0, 256, (h, w)), 0).astype(np.uint8)
    alpha[rng.random((h, w)) < 0.01] = 1
    x0 = rng.integers(0, w + 1, h)
    dspans = np.stack([x0, np.minimum(x0 + rng.integers(1, w, h), w)], 1).astype(np.int32)
    dspans[rng.random(h) < 0.3] = (w, 0)  # rows without depth
    got, spans = K.interleave_rgba(color, alpha, dspans)
    ref, ref_spans = n_decode.interleave_rgba(color, alpha, dspans)
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(spans, ref_spans)


def test_fade_blend_is_three_temporal_blends_in_one_pass():
    rng = np.random.default_rng(5)
    tiles = [rng.integers(0, 256, (17, 23, 4), dtype=np.uint8) for _ in range(4)]
    depths = [np.where(rng.random((17, 23)) < 0.3, 0, rng.uniform(0.4, 0.8, (17, 23))).astype(np.float32)
              for _ in range(4)]
    for t0, t1, t in ((0.3, 0.0, 0.5), (0.0, 0.77, 0.1), (1.0, 0.5, 1.0), (0.42, 0.9, 0.0)):
        r0, d0 = n_blend.temporal_blend(tiles[0], tiles[1], depths[0], depths[1], t0)
        r1, d1 = n_blend.temporal_blend(tiles[2], tiles[3], depths[2], depths[3], t1)
        ref, dref = n_blend.temporal_blend(r0, r1, d0, d1, t)
        out, dout = np.zeros_like(tiles[0]), np.zeros_like(depths[0])
        K.fade_blend((tiles[0], tiles[1], depths[0], depths[1], t0), (tiles[2], tiles[3], depths[2], depths[3], t1),
                     t, out, dout)
        assert np.array_equal(out, ref), (t0, t1, t)
        np.testing.assert_allclose(dout, dref, rtol=1e-6)
        # and bit for bit what the three separate kernel passes gave
        s0, sd0 = np.zeros_like(out), np.zeros_like(dout)
        s1, sd1 = np.zeros_like(out), np.zeros_like(dout)
        K.temporal_blend(tiles[0], tiles[1], depths[0], depths[1], t0, s0, sd0)
        K.temporal_blend(tiles[2], tiles[3], depths[2], depths[3], t1, s1, sd1)
        K.temporal_blend(s0, s1, sd0, sd1, t, s0, sd0)
        assert np.array_equal(out, s0) and np.array_equal(dout, sd0)
    out, dout = np.full_like(tiles[0], 9), np.full_like(depths[0], -1.0)
    K.fade_blend((tiles[0], tiles[1], depths[0], depths[1], 0.2), (tiles[2], tiles[3], depths[2], depths[3], 0.6),
                 0.5, out, dout, box=(2, 9, 4, 15))
    assert (out[:2] == 9).all() and (out[:, 15:] == 9).all() and (dout[9:] == -1).all() and (dout[:, :4] == -1).all()
    assert (out[2:9, 4:15] != 9).any()


def test_crossfade_and_composite_match_twins():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (9, 13, 4), dtype=np.uint8)
    a[..., :3] = (a[..., :3].astype(int) * a[..., 3:] // 255).astype(np.uint8)  # premultiplied
    b = rng.integers(0, 256, (9, 13, 4), dtype=np.uint8)
    out = np.empty_like(a)
    for t in (0.0, 0.25, 0.7, 1.0):
        K.crossfade(a, b, t, out)
        assert np.array_equal(out, n_composite.crossfade(a, b, t)), t
        assert np.abs(out.astype(float) - ((1 - t) * a + t * b)).max() <= 1.0
    K.crossfade(a, b, 0.0, out)
    assert np.array_equal(out, a)
    for bg in ((0.2, 0.4, 0.9), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.08, 0.08, 0.09)):
        img = np.empty(a.shape, np.uint8)
        K.composite(a, bg, img)
        assert np.array_equal(img, n_composite.composite(a, bg)), bg
        # and the float over-operator it stands for, to the rounding
        want = np.clip(a[..., :3] / 255 + (1 - a[..., 3:] / 255) * np.asarray(bg), 0, 1) * 255
        assert np.abs(img[::-1, :, :3] - want).max() <= 0.5 + 1e-6, bg
    # A lossy colour codec can leave a channel above its alpha: saturate, never wrap.
    over = np.array([[[250, 10, 255, 200]]], np.uint8)
    img = np.empty_like(over)
    K.composite(over, (1.0, 1.0, 1.0), img)
    assert img.tolist() == [[[255, 65, 255, 255]]]
    # GL order: the top source row is the last output row; transparent pixels show the background.
    clear = np.zeros((4, 4, 4), np.uint8)
    clear[0, :, :] = 255
    img = np.empty(clear.shape, np.uint8)
    K.composite(clear, (0.2, 0.4, 0.9), img)
    assert img[-1, 0].tolist() == [255, 255, 255, 255]
    assert img[0, 0].tolist() == [51, 102, 230, 255]


def test_composite_writes_only_the_row_spans():
    # With spans, each source row's columns [x0, x1) are composited as without them and every
    # other output pixel keeps what it held; rows flip as ever (source row y -> output H-1-y).
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (6, 11, 4), dtype=np.uint8)
    a[..., :3] = (a[..., :3].astype(int) * a[..., 3:] // 255).astype(np.uint8)
    spans = np.array([[0, 11], [3, 7], [11, 0], [5, 5], [-2, 4], [8, 20]], np.int32)  # clamped to the row
    img = np.full(a.shape, 7, np.uint8)
    K.composite(a, (0.2, 0.4, 0.9), img, spans=spans)
    want = n_composite.composite(a, (0.2, 0.4, 0.9))
    for y, (x0, x1) in enumerate(spans):
        inside = np.zeros(11, bool)
        inside[max(x0, 0):max(min(x1, 11), 0)] = True
        yo = 5 - y
        assert np.array_equal(img[yo, inside], want[yo, inside]), y
        assert (img[yo, ~inside] == 7).all(), y


def test_warp_spans_bound_the_warped_frame():
    # The warp's row spans (first to last non-EMPTY cell) hold every nonzero warped pixel, and
    # they are tight: the cells at both ends of a span are not EMPTY, and a frame with background
    # around the subject has spans narrower than its rows.
    intr, tintr, rgba, depth, w, src, tgt, _ = _setup(size=96, stride=8, target=(4.0, -3.0), fov=60.0)
    coarse = np.zeros((2, 24, 24), np.float32)
    K.splat_depth(depth, w, src, tgt, 4, 1, coarse)
    sc = K.warp_scratch(4, (96, 96), 8)
    out = np.zeros((96, 96, 4), np.uint8)
    K.warp(rgba, depth, w, src, tgt, coarse, 8, out, scratch=sc, zstride=4)
    spans = np.zeros((96, 2), np.int32)
    K.warp_spans(sc, 8, 96, spans)
    nonzero = out.view(np.uint32)[..., 0] != 0
    assert nonzero.any() and not nonzero.all()
    narrower = 0
    for y, (x0, x1) in enumerate(spans):
        assert not nonzero[y, :max(x0, 0)].any() and not nonzero[y, max(x1, 0):].any(), y
        if x1 > x0:
            assert x0 % 8 == 0 and sc.mode[y // 8, x0 // 8] != K.MODE_EMPTY, y
            assert sc.mode[y // 8, (x1 - 1) // 8] != K.MODE_EMPTY, y
            narrower += x1 - x0 < 96
        else:
            assert (x0, x1) == (96, 0) and (sc.mode[y // 8, :12] == K.MODE_EMPTY).all(), y
    assert narrower > 10


def _setup(size=48, stride=4, target=(3.0, -2.0), zoom=1.0, fov=30.0):
    intr = Intrinsics.from_fov(fov, size, size)
    rgba, depth, poses = grid_sources(intr)
    idx, w = K.view_weights(np.array([-10.0, 10.0]), np.array([-8.0, 8.0]), *target)
    src = cams(intr, poses)
    tintr = Intrinsics(intr.fx * zoom, intr.fy * zoom, intr.cx, intr.cy, size, size)
    tgt = K.camera_arrays(tintr, orbit_pose(target[0], target[1], RADIUS))
    hc = -(-size // stride)
    return intr, tintr, rgba[idx], depth[idx], w, (src[0][idx], src[1][idx], src[2][idx]), tgt, hc


@pytest.mark.parametrize("stride,zoom,zstride,size", [(4, 1.0, 4, 48), (2, 1.6, 2, 48), (1, 0.8, 1, 48),
                                                     (4, 1.0, 2, 48), (8, 1.0, 4, 96)])
def test_splat_and_warp_match_twins(stride, zoom, zstride, size):
    intr, tintr, rgba, depth, w, src, tgt, _ = _setup(size=size, stride=stride, zoom=zoom)
    hc = -(-size // zstride)
    coarse = np.zeros((2, hc, hc), np.float32)
    K.splat_depth(depth, w, src, tgt, zstride, 1, coarse)
    zb = n_splat.splat_depth(depth, w, src, tgt, zstride, 1, (hc, hc))
    np.testing.assert_allclose(coarse[0], zb, rtol=1e-5)
    assert (zb > 0).mean() > 0.2
    out8 = np.zeros((size, size, 4), np.uint8)
    scratch = K.warp_scratch(4, (size, size), stride)
    K.warp(rgba, depth, w, src, tgt, coarse, stride, out8, scratch=scratch, zstride=zstride)
    out = out8 / 255.0
    ref = n_warp.warp(rgba, depth, w, src, tgt, zb, stride, (size, size), zstride=zstride)
    # Both paths are exercised: MESH cells (fixed-point blend), some of them blending only the
    # sources that see them (the bump hides the sphere from some views), and per-pixel cells.
    mode, used = scratch.mode[:-1, :-1], scratch.used[:-1, :-1]
    mesh = mode == K.MODE_MESH
    assert mesh.sum() >= 40 and (mode == K.MODE_PIXEL).sum() >= 10, (mesh.sum(), (mode == K.MODE_PIXEL).sum())
    if (stride, zstride) in ((4, 4), (1, 1)):  # the cases whose scene has such cells
        assert (mesh & (used != 0b1111)).any()
    close = np.abs(out - ref).max(-1) < 2e-3
    assert close.mean() > 0.995, close.mean()  # float32 vs float64 can flip a z-test edge pixel
    assert np.abs(out - ref).mean() < 1e-3
    # MESH_RAMP cells (the z-test changes across the cell: weights step in fixed point) are
    # there and match the twin's fixed point too.
    ramp = np.kron(mode == K.MODE_MESH_RAMP, np.ones((stride, stride), bool))[:size, :size]
    assert ramp.sum() >= 2 * stride * stride, ramp.sum()
    assert close[ramp].mean() > 0.99, close[ramp].mean()
    assert scratch.split == (2 if stride == 8 else 1)
    if scratch.split == 2:
        # PIXEL cells split into four on the stride-4 lattice, and some of those are MESH (the
        # twin takes them from its own stride-4 lattice).
        split = np.kron(mode == K.MODE_PIXEL, np.ones((2, 2), bool))
        fine_mesh = split & (scratch.fmode[:-1, :-1] >= K.MODE_MESH)
        assert fine_mesh.sum() >= 5, fine_mesh.sum()
        px = np.kron(fine_mesh, np.ones((stride // 2, stride // 2), bool))[:size, :size]
        assert close[px].mean() > 0.99, close[px].mean()



def test_warp_mesh_cells_cut_by_the_frame_edge_match_twin():
    # A frame whose size is no multiple of the stride (nor of the split's fine spacing): the last
    # band and column of cells are cut short. The zoomed head reaches past the frame, so MESH
    # cells are cut there; they fill exactly the pixels inside the frame, as the twin does.
    size, stride, zstride = 98, 8, 4
    intr, tintr, rgba, depth, w, src, tgt, _ = _setup(size=size, stride=stride, zoom=1.6)
    hc = -(-size // zstride)
    coarse = np.zeros((2, hc, hc), np.float32)
    K.splat_depth(depth, w, src, tgt, zstride, 1, coarse)
    zb = n_splat.splat_depth(depth, w, src, tgt, zstride, 1, (hc, hc))
    out8 = np.zeros((size, size, 4), np.uint8)
    scratch = K.warp_scratch(4, (size, size), stride)
    K.warp(rgba, depth, w, src, tgt, coarse, stride, out8, scratch=scratch, zstride=zstride)
    ref = n_warp.warp(rgba, depth, w, src, tgt, zb, stride, (size, size), zstride=zstride)
    mode = scratch.mode[:-1, :-1]
    last = size // stride  # the cut cells' row and column
    assert (mode[last] >= K.MODE_MESH).sum() >= 3 and (mode[:, last] >= K.MODE_MESH).sum() >= 3
    cut = np.zeros((size, size), bool)
    cut[last * stride:] = np.kron(mode[last] >= K.MODE_MESH, np.ones((1, stride), bool))[0, :size]
    cut[:, last * stride:] |= np.kron(mode[:, last:last + 1] >= K.MODE_MESH, np.ones((stride, 1), bool))[:size, :1]
    assert (out8[cut][:, 3] > 0).mean() > 0.9
    close = np.abs(out8 / 255.0 - ref).max(-1) < 2e-3
    assert close[cut].mean() > 0.99, close[cut].mean()
    assert close.mean() > 0.995, close.mean()


def _warped_at_512_lattice(size: int, stride: int) -> tuple:
    """A frame warped on the player's 512 px lattice (stride 8, PIXEL cells split, z-buffer cell
    4) at ``size``: (rgba, depth, w, src, tgt, coarse, scratch, out8)."""
    intr, tintr, rgba, depth, w, src, tgt, _ = _setup(size=size, stride=stride, fov=40.0)
    coarse = np.zeros((2, -(-size // 4), -(-size // 4)), np.float32)
    K.splat_depth(depth, w, src, tgt, 4, 1, coarse)
    sc = K.warp_scratch(4, (size, size), stride)
    out8 = np.zeros((size, size, 4), np.uint8)
    K.warp(rgba, depth, w, src, tgt, coarse, stride, out8, scratch=sc, zstride=4)
    return rgba, depth, w, src, tgt, coarse, sc, out8


def test_mesh_pass_is_vectorised_and_renders_the_warps_mesh_cells():
    # Step 3a of the warp (EMPTY and MESH cells) is fast only while LLVM vectorises its taps, and
    # that depends on numba finding no alias in the prange body (see ``_warp``, step 3): a tuple
    # or subarray added to ``_mesh_band`` silently makes it ~2x slower. A prange over it, as in
    # ``_warp``, must compile to vector gathers and draw exactly the warp's EMPTY and MESH pixels.
    import llvmlite.binding as llvm
    from numba import njit, prange
    if not llvm.get_host_cpu_features().get("avx2", False):
        pytest.skip("no AVX2 gathers on this CPU")

    @njit(parallel=True)
    def mesh_pass(flat, w_s, h_s, nodes, mode, used, rem, fmode, fused, frem, stride, split, out32):
        for jc in prange(-(-out32.shape[0] // stride)):
            kmesh._mesh_band(flat, w_s, h_s, nodes, mode, used, rem, fmode, fused, frem, stride, split, jc, out32)

    size, stride = 96, 8
    rgba, depth, w, src, tgt, coarse, sc, out8 = _warped_at_512_lattice(size, stride)
    mine = np.full((size, size), 7, np.uint32)  # a PIXEL pixel keeps this
    mesh_pass(np.ascontiguousarray(rgba).view(np.uint32).reshape(-1), size, size, sc.nodes, sc.mode, sc.used,
              sc.rem, sc.fmode, sc.fused, sc.frem, stride, sc.split, mine)
    fine = stride // sc.split
    pixel = np.kron(sc.mode[:-1, :-1] == K.MODE_PIXEL, np.ones((sc.split, sc.split), bool)) \
        & (sc.fmode[:-1, :-1] == K.MODE_PIXEL)
    pixel = np.kron(pixel, np.ones((fine, fine), bool))[:size, :size]
    meshy = np.kron(sc.mode[:-1, :-1] >= K.MODE_MESH, np.ones((stride, stride), bool))[:size, :size]
    assert pixel.sum() >= 64 and meshy.sum() >= 20 * stride * stride, (pixel.sum(), meshy.sum())
    assert (mine[pixel] == 7).all()
    np.testing.assert_array_equal(mine[~pixel], out8.view(np.uint32)[..., 0][~pixel])
    asm = mesh_pass.inspect_asm(mesh_pass.signatures[0])
    assert "gather" in asm, "step 3a of the warp is no longer vectorised"


def test_pixel_keep_stores_the_listed_pixels_clear_and_keeps_those_with_a_surface_in_order():
    # Step 3b drops pixels with no surface between its stages (``_pixels_keep``): each listed
    # pixel is stored transparent (the blend later overwrites the kept ones), the kept ones move
    # to the front of this thread's list with their depth and flags, in order, and no other
    # thread's list or unlisted pixel changes.
    from numba import njit

    @njit
    def keep(n, t, pts, pg, out32):
        return kpixels._pixels_keep(n, t, pts, pg, out32)

    rng = np.random.default_rng(5)
    n, cap = 40, 48
    pts = rng.integers(0, 16, (2, 2, cap)).astype(np.int64)
    pts[1, 0, :n], pts[1, 1, :n] = np.divmod(rng.permutation(256)[:n], 16)  # distinct pixels
    pg = rng.uniform(0.5, 2.0, (2, 2, cap))
    z = pg[1, 0]
    z[rng.random(cap) < 0.5] = 0.0
    z[n:] = 1.0  # past the list: never kept
    want = [(pts[1, 0, i], pts[1, 1, i], pg[1, 0, i], pg[1, 1, i]) for i in range(n) if pg[1, 0, i] > 0]
    other_pts, other_pg = pts[0].copy(), pg[0].copy()
    out = np.full((16, 16), 7, np.uint32)
    listed = np.zeros((16, 16), bool)
    listed[pts[1, 1, :n], pts[1, 0, :n]] = True
    m = keep(n, 1, pts, pg, out)
    assert 0 < m == len(want) < n
    assert [(pts[1, 0, i], pts[1, 1, i], pg[1, 0, i], pg[1, 1, i]) for i in range(m)] == want
    assert (out[listed] == 0).all() and (out[~listed] == 7).all()
    assert np.array_equal(pts[0], other_pts) and np.array_equal(pg[0], other_pg)


def test_pixel_pass_is_vectorised_and_renders_the_warps_pixel_cells():
    # Step 3b (PIXEL cells) runs its per-pixel rule as stages over a list of pixels, fast only
    # while LLVM vectorises each stage's loop: a loop inside one (over the sources), a tuple or a
    # subarray silently makes it scalar. A prange over ``_pixel_batch``, as in ``_warp``, given
    # the warp's PIXEL pixels, must draw exactly what the warp drew there, leave every other
    # pixel alone, and compile its stages (depth, a refinement step, rim test, blend) to vector
    # loops.
    import llvmlite.binding as llvm
    from numba import get_thread_id, njit, prange
    if not llvm.get_host_cpu_features().get("avx2", False):
        pytest.skip("no AVX2 on this CPU")

    @njit(parallel=True, fastmath=True)
    def pixel_pass(pts, pg, zb, zstride, ref, dflat, flat, h_s, w_s, src_w, src_k, geo, tgt_k, out32):
        for _ in prange(1):
            kpixels._pixel_batch(pts.shape[2], get_thread_id(), pts, pg, zb, zstride, 0.05, 2, ref, 0.02, dflat, flat,
                           h_s, w_s, src_w, src_k, geo, tgt_k, out32)

    size, stride = 96, 8
    rgba, depth, w, src, tgt, coarse, sc, out8 = _warped_at_512_lattice(size, stride)
    fine = stride // sc.split
    pixel = np.kron(sc.mode[:-1, :-1] == K.MODE_PIXEL, np.ones((sc.split, sc.split), bool)) \
        & (sc.fmode[:-1, :-1] == K.MODE_PIXEL)
    pixel = np.kron(pixel, np.ones((fine, fine), bool))[:size, :size]
    ys, xs = np.nonzero(pixel)
    drawn = out8.view(np.uint32)[..., 0]
    assert len(xs) >= 64 and (drawn[pixel] != 0).sum() >= 16, (len(xs), (drawn[pixel] != 0).sum())
    threads = sc.pts.shape[0]
    pts = np.zeros((threads, 2, len(xs)), np.int64)
    pts[:, 0], pts[:, 1] = xs, ys
    mine = np.full((size, size), 7, np.uint32)  # a pixel the pass does not draw keeps this
    ref = int(np.argmax(w))
    pixel_pass(pts, np.zeros((threads, 2, len(xs))), coarse[0], 4, ref, depth.reshape(-1),
               np.ascontiguousarray(rgba).view(np.uint32).reshape(-1), size, size, w, src[0], sc.geo, tgt[0], mine)
    np.testing.assert_array_equal(mine[pixel], drawn[pixel])
    assert (mine[~pixel] == 7).all()

    # Each stage alone, so that a vectorised loop is told apart from a scalar one.
    @njit(parallel=True, fastmath=True)
    def depth_stage(pts, pg, zb, zstride, ref, dflat, h_s, w_s, src_k, geo, tgt_k):
        for _ in prange(1):
            kpixels._pixels_depth(pts.shape[2], get_thread_id(), pts, pg, zb, zstride, 0.05, ref, dflat, h_s, w_s, src_k,
                            geo, tgt_k)

    @njit(parallel=True, fastmath=True)
    def refine_stage(pts, pg, ref, dflat, h_s, w_s, src_k, geo, tgt_k):
        for _ in prange(1):
            kpixels._pixels_refine(pts.shape[2], get_thread_id(), pts, pg, 0.05, ref, dflat, h_s, w_s, src_k, geo, tgt_k)

    @njit(parallel=True, fastmath=True)
    def rim_stage(pts, pg, ref, dflat, h_s, w_s, src_k, geo, tgt_k):
        for _ in prange(1):
            kpixels._pixels_rim(pts.shape[2], get_thread_id(), pts, pg, 0.05, ref, dflat, h_s, w_s, src_k, geo, tgt_k)

    @njit(parallel=True, fastmath=True)
    def blend_stage(pts, pg, dflat, flat, h_s, w_s, src_w, src_k, geo, tgt_k, out32):
        for _ in prange(1):
            kpixels._pixels_blend(pts.shape[2], get_thread_id(), pts, pg, 0.02, dflat, flat, h_s, w_s, src_w, src_k, geo,
                            tgt_k, out32)

    pg = np.zeros((threads, 2, len(xs)))
    dflat, flat = depth.reshape(-1), np.ascontiguousarray(rgba).view(np.uint32).reshape(-1)
    depth_stage(pts, pg, coarse[0], 4, ref, dflat, size, size, src[0], sc.geo, tgt[0])
    refine_stage(pts, pg, ref, dflat, size, size, src[0], sc.geo, tgt[0])
    rim_stage(pts, pg, ref, dflat, size, size, src[0], sc.geo, tgt[0])
    blend_stage(pts, pg, dflat, flat, size, size, w, src[0], sc.geo, tgt[0], mine)
    for stage in (depth_stage, refine_stage, rim_stage, blend_stage):
        ir = stage.inspect_llvm(stage.signatures[0])
        assert "llvm.loop.isvectorized" in ir, f"step 3b of the warp: {stage.__name__} is no longer vectorised"


@pytest.mark.parametrize("target", [(3.0, -2.0), (-7.0, 5.0)])
def test_split_cells_render_as_the_half_stride_lattice(target):
    # A split frame is the stride-8 frame outside its PIXEL cells and, inside them, exactly the
    # frame of a stride-4 lattice (same nodes, same cell rule): no seam where the two meet.
    intr, tintr, rgba, depth, w, src, tgt, _ = _setup(size=96, stride=8, target=target, fov=40.0)
    coarse = np.zeros((2, 24, 24), np.float32)
    K.splat_depth(depth, w, src, tgt, 4, 1, coarse)
    outs, scratch = {}, {}
    for name, stride, split in (("split", 8, True), ("coarse", 8, False), ("fine", 4, False)):
        scratch[name] = K.warp_scratch(4, (96, 96), stride, split)
        outs[name] = np.zeros((96, 96, 4), np.uint8)
        K.warp(rgba, depth, w, src, tgt, coarse, stride, outs[name], scratch=scratch[name], zstride=4)
    assert [scratch[n].split for n in outs] == [2, 1, 1]
    mode, fmode = scratch["split"].mode[:-1, :-1], scratch["split"].fmode[:-1, :-1]
    pixel = mode == K.MODE_PIXEL
    inside = np.kron(pixel, np.ones((8, 8), bool))[:96, :96]
    assert pixel.sum() >= 10 and (mode >= K.MODE_MESH).sum() >= 20, (pixel.sum(), (mode >= K.MODE_MESH).sum())
    assert (np.kron(pixel, np.ones((2, 2), bool)) & (fmode >= K.MODE_MESH)).sum() >= 5
    np.testing.assert_array_equal(outs["split"][~inside], outs["coarse"][~inside])
    np.testing.assert_array_equal(outs["split"][inside], outs["fine"][inside])
    assert (outs["split"][inside] != outs["coarse"][inside]).any()  # the split changed something


@pytest.mark.parametrize("target,n_views", [((-9.0, -7.0), 1), ((0.0, -7.0), 2), ((0.0, 0.0), 4)])
def test_warp_with_fewer_views_matches_twin(target, n_views):
    # Sharpened weights near a grid view leave 1 or 2 views with weight > 0: the warp taps only
    # those (MESH spans have one loop per tap count) and still matches the twin.
    intr = Intrinsics.from_fov(30.0, 48, 48)
    rgba, depth, poses = grid_sources(intr)
    idx, w = K.view_weights(np.array([-10.0, 10.0]), np.array([-8.0, 8.0]), *target, sharpen=4.0)
    assert (w > 0).sum() == n_views, w
    all_src = cams(intr, poses)
    src = (all_src[0][idx], all_src[1][idx], all_src[2][idx])
    tgt = K.camera_arrays(intr, orbit_pose(target[0], target[1], RADIUS))
    coarse = np.zeros((2, 12, 12), np.float32)
    K.splat_depth(depth[idx], w, src, tgt, 4, 1, coarse)
    out8 = np.zeros((48, 48, 4), np.uint8)
    scratch = K.warp_scratch(4, (48, 48), 4)
    K.warp(rgba[idx], depth[idx], w, src, tgt, coarse, 4, out8, scratch=scratch)
    out = out8 / 255.0
    ref = n_warp.warp(rgba[idx], depth[idx], w, src, tgt, coarse[0].copy(), 4, (48, 48))
    mode, used = scratch.mode[:-1, :-1], scratch.used[:-1, :-1]
    counts = np.array([bin(int(u)).count("1") for u in used[mode == K.MODE_MESH]])
    assert counts.size >= 40 and counts.max() <= n_views and (counts == n_views).sum() >= 20, counts
    close = np.abs(out - ref).max(-1) < 2e-3
    assert close.mean() > 0.995, close.mean()
    assert np.abs(out - ref).mean() < 1e-3
    assert out[..., 3].max() > 0.9  # the head is there


def test_warp_beats_plain_blend_and_sees_occlusion():
    size = 96
    intr, tintr, rgba, depth, w, src, tgt, _ = _setup(size=size, stride=2, target=(0.0, 0.0))
    truth, _ = trace_sphere(0.0, 0.0, intr)
    hc = size // 2
    coarse = np.zeros((2, hc, hc), np.float32)
    K.splat_depth(depth, w, src, tgt, 2, 1, coarse)
    got = np.zeros((size, size, 4), np.uint8)
    K.warp(rgba, depth, w, src, tgt, coarse, 2, got)
    plain = np.clip(np.tensordot(w, rgba.astype(np.float32), 1) + 0.5, 0, 255).astype(np.uint8)
    # Inside the silhouette (a hard-edged sphere's outline is the same circle from every view, which
    # flatters plain blending there; a face is not a sphere).
    inner = erode(truth[..., 3] > 0, 3)
    p_warp, p_plain = psnr(got, truth, inner), psnr(plain, truth, inner)
    assert p_warp > 28 and p_warp > p_plain + 6, (p_warp, p_plain)
    # Without the z-test (huge tolerance) occluded texture bleeds through: worse.
    got2 = np.zeros_like(got)
    K.warp(rgba, depth, w, src, tgt, coarse, 2, got2, ztol=1e6)
    assert psnr(got2, truth, inner) < p_warp - 0.2


def dilate(mask, n):
    return ~erode(~mask, n)


@pytest.mark.parametrize("target", [(0.0, 0.0), (4.0, -3.0)])
def test_warp_keeps_the_silhouette_where_it_is(target):
    # The coarse z-buffer reaches a cell past the silhouette; a background pixel there must not
    # take the colour of what a source sees behind it (spill), and the surface must not shrink.
    # (A wide field of view keeps the whole outline inside the frame.)
    size, stride = 96, 2
    intr, tintr, rgba, depth, w, src, tgt, _ = _setup(size=size, stride=stride, target=target, fov=45.0)
    truth, _ = trace_sphere(*target, intr)
    hit = truth[..., 3] > 0
    hc = size // stride
    coarse = np.zeros((2, hc, hc), np.float32)
    K.splat_depth(depth, w, src, tgt, stride, 1, coarse)
    out8 = np.zeros((size, size, 4), np.uint8)
    K.warp(rgba, depth, w, src, tgt, coarse, stride, out8)
    out = out8 / 255.0
    ref = n_warp.warp(rgba, depth, w, src, tgt, coarse[0], stride, (size, size))
    outline = (hit & ~erode(hit, 1)).sum()
    for a in (out[..., 3], ref[..., 3]):
        # Measured: before the silhouette tests, ~1.5 outline lengths of pixels spilled past
        # 1 px and 30-60 pixels past 3 px; now ~0.2 outline lengths past 1 px and none past 3.
        assert (a[erode(~hit, 1)] > 0.02).sum() < 0.35 * outline, ((a[erode(~hit, 1)] > 0.02).sum(), outline)
        assert a[erode(~hit, 3)].max() < 0.02, a[erode(~hit, 3)].max()
        assert a[erode(hit, 1)].mean() > 0.98, a[erode(hit, 1)].mean()  # and the surface stays
        assert ((a > 0.5) ^ hit).sum() <= 0.03 * hit.sum()  # edge pixels: half-pixel shifts


def test_splat_fills_cracks_without_growing_the_silhouette():
    # One source seen from its own camera: a 2-row gap in its depth leaves a 1-row crack after the
    # 2x2 splat footprint, which the dilation closes; the silhouette grows by the footprint only
    # (one cell; the dilation used to add another).
    size = 48
    intr = Intrinsics.from_fov(45.0, size, size)  # the outline clear of the frame edges
    _, depth = trace_sphere(0.0, 0.0, intr)
    hit = depth > 0
    depth[24:26] = 0.0
    cam = K.camera_arrays(intr, orbit_pose(0.0, 0.0, RADIUS))
    src = tuple(np.ascontiguousarray(a[None]) for a in cam)
    w = np.ones(1, np.float32)
    coarse = np.zeros((2, size, size), np.float32)
    K.splat_depth(depth[None], w, src, cam, 1, 1, coarse)
    zb = n_splat.splat_depth(depth[None], w, src, cam, 1, 1, (size, size))
    for z in (coarse[0], zb):
        row = hit[24] & hit[23] & hit[26]
        assert row.sum() > 10 and (z[25][row] > 0).all()  # the crack is closed
        grown = np.pad(hit, 1)
        grown = grown[:-2] | grown[1:-1] | grown[2:]
        grown = grown[:, :-2] | grown[:, 1:-1] | grown[:, 2:]  # the footprint: one cell around
        assert not (z > 0)[~grown].any()


def test_splat_projects_only_the_samples_inside_the_row_spans():
    # With the tiles' spans the splat skips the columns outside them (their depth is 0): spans that
    # bound the content give the same z-buffer as none, spans that cut it give the z-buffer of the
    # depth cut the same way, and an empty row splats nothing.
    intr, _, rgba, depth, w, src, tgt, _ = _setup(size=96, stride=8, target=(4.0, -3.0), fov=40.0)
    hc = 24
    spans = np.stack([n_decode.content_spans(rgba[s], depth[s]) for s in range(4)])
    assert (spans[:, :, 0] > 0).any() and (spans[:, :, 1] < 96).any()  # the content is narrower than the tile
    full = np.zeros((2, hc, hc), np.float32)
    K.splat_depth(depth, w, src, tgt, 4, 1, full)
    bounded = np.zeros((2, hc, hc), np.float32)
    K.splat_depth(depth, w, src, tgt, 4, 1, bounded, spans=spans, rows=K.splat_rows(96))
    np.testing.assert_array_equal(bounded[0], full[0])

    cut = spans.copy()
    cut[:, :, 0] = np.maximum(cut[:, :, 0], 50)  # no column left of 50
    cut[:, 40:44] = (96, 0)  # rows 40-43 empty
    cut_depth = depth.copy()
    cut_depth[:, :, :50] = 0.0
    cut_depth[:, 40:44] = 0.0
    mine = np.zeros((2, hc, hc), np.float32)
    K.splat_depth(depth, w, src, tgt, 4, 1, mine, spans=cut)
    expect = np.zeros((2, hc, hc), np.float32)
    K.splat_depth(cut_depth, w, src, tgt, 4, 1, expect)
    np.testing.assert_array_equal(mine[0], expect[0])
    assert (expect[0] > 0).sum() < (full[0] > 0).sum()  # the cut left part of the surface out


def test_splat_row_projection_is_vectorised():
    # The splat's per-sample projection (``_splat_row``) is fast only while LLVM vectorises it;
    # it also has to give each sample's depth and footprint cell as the splat's own rule does.
    from numba import njit

    @njit
    def row_stage(dflat, base, half, sstride, k0, n, vy, cx, rfx, g, su, sv, ou, ov, ci, cj, zrow):
        ksplat._splat_row(dflat, base, half, sstride, k0, n, vy, cx, rfx, g, su, sv, ou, ov, ci, cj, zrow)

    size = 48
    intr = Intrinsics.from_fov(45.0, size, size)  # background on both sides of the sphere
    _, depth = trace_sphere(0.0, 0.0, intr)
    y = 21  # a sample row of a 2 px z-buffer cell: rows and columns 1, 3, 5, ...
    cam = K.camera_arrays(intr, orbit_pose(0.0, 0.0, RADIUS))
    g = np.zeros((4, 3))
    g[:3] = np.eye(3)  # target = source camera
    fx, fy, cx, cy = cam[0]
    ci, cj, zrow = np.full(size, 7, np.int64), np.full(size, 7, np.int64), np.full(size, 7, np.float32)
    stride = 2  # z-buffer cell: 2 px; one sample per cell, at its centre
    k0, n = 3, size // 2 - 3  # samples 3 .. 23 of the row
    row_stage(depth.reshape(-1), y * size, 1, 2, k0, n, (y + 0.5 - cy) / fy, cx, 1 / fx, g,
              fx / stride, fy / stride, cx / stride - 0.5, cy / stride - 0.5, ci, cj, zrow)
    d = depth[y, 1::2][k0:]
    assert (d > 0).sum() > 5 and (d == 0).sum() > 5
    np.testing.assert_allclose(zrow[:n], d, rtol=1e-6)
    # Seen from its own camera the sample at the centre of cell (j, i) has its footprint's top
    # left there (the footprint covers (j, i) and its lower right neighbours).
    surf = d > 0
    np.testing.assert_array_equal(ci[:n][surf], (k0 + np.arange(n))[surf])
    assert (cj[:n][surf] == y // 2).all()
    assert (ci[n:] == 7).all() and (cj[n:] == 7).all() and (zrow[n:] == 7).all()  # n samples written, no more
    ir = row_stage.inspect_llvm(row_stage.signatures[0])
    assert "llvm.loop.isvectorized" in ir, "the splat's row projection is no longer vectorised"


@pytest.mark.parametrize("mesh", [True, False])
def test_warp_keeps_coverage_at_frame_edges(mesh):
    # The sphere fills every view's frame (narrow field of view): a target pixel near the frame
    # edge projects outside some sources. Those know nothing there and must not count as
    # transparent: the warped frame stays opaque to its edges, in the kernel and in the twin.
    size, stride = 40, 2
    intr = Intrinsics.from_fov(12.0, size, size)
    rgba, depth, poses = grid_sources(intr)
    w = np.full(4, 0.25, np.float32)
    src = cams(intr, poses)
    tgt = K.camera_arrays(intr, orbit_pose(0.0, 0.0, RADIUS))
    assert (rgba[..., 3] == 255).all()
    hc = size // stride
    coarse = np.zeros((2, hc, hc), np.float32)
    K.splat_depth(depth, w, src, tgt, stride, 1, coarse)
    out8 = np.zeros((size, size, 4), np.uint8)
    scratch = K.warp_scratch(4, (size, size), stride)
    K.warp(rgba, depth, w, src, tgt, coarse, stride, out8, mesh=mesh, scratch=scratch)
    out = out8 / 255.0
    ref = n_warp.warp(rgba, depth, w, src, tgt, coarse[0], stride, (size, size), mesh=mesh)
    assert out[..., 3].min() > 0.99 and ref[..., 3].min() > 0.99, (out[..., 3].min(), ref[..., 3].min())
    if mesh:
        # Cells where a source's taps reach past its image edge blend on the lattice too
        # (MESH_RAMP, coordinates clamped like the per-pixel sampler), as the twin does.
        past_edge = (scratch.see[1] & ~scratch.see[0]) != 0  # nodes weighted, footprint not inside
        assert past_edge.sum() >= 10, past_edge.sum()
        ramp = np.kron(scratch.mode[:-1, :-1] == K.MODE_MESH_RAMP, np.ones((stride, stride), bool))[:size, :size]
        assert ramp.sum() >= 40, ramp.sum()
        assert np.abs(out - ref).max(-1)[ramp].max() < 2e-3
    truth, _ = trace_sphere(0.0, 0.0, intr)
    assert psnr(out8, truth) > 26


def test_wrappers_reject_bad_input():
    # Explicit checks, not asserts: they hold under ``python -O`` too, and say what was expected.
    with pytest.raises(ValueError, match="RGBA"):
        K.temporal_blend(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8),
                         np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32), 0.5,
                         np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="background"):
        K.composite(np.zeros((4, 4, 4), np.float32), (0, 0), np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="at most 4 sources"):
        K.warp(np.zeros((5, 8, 8, 4), np.uint8), np.zeros((5, 8, 8), np.float32), np.zeros(5, np.float32),
               (np.zeros((5, 4)), np.zeros((5, 3, 3)), np.zeros((5, 3))), (np.zeros(4), np.eye(3), np.zeros(3)),
               np.zeros((2, 4, 4), np.float32), 2, np.zeros((8, 8, 4), np.uint8),
               scratch=K.warp_scratch(5, (8, 8), 2))


def test_wrapper_checks_survive_python_O():
    # ``python -O`` strips asserts; a kernel given a wrong shape would then read past its arrays.
    import subprocess
    import sys
    code = ("import numpy as np\nfrom player import kernels as K\n"
            "try:\n    K.view_weights(np.zeros(0), np.zeros(1), 0.0, 0.0)\nexcept ValueError as e:\n    print('refused', e)")
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True)
    assert out.stdout.startswith("refused expected non-empty"), (out.stdout, out.stderr[-500:])


def test_slot_code_is_generated_once_and_readable():
    # The warp's per-source slots come from one slot's template (``slots``): the generated
    # functions carry every slot, and their source is there for tracebacks and inspect.
    import inspect
    from player.kernels import slots
    src = inspect.getsource(kpixels._pixels_blend.py_func)
    assert all(f"# Slot {s}:" in src for s in slots.SLOTS) and "wa = pa0 + pa1 + pa2 + pa3" in src
    src = inspect.getsource(kmesh._mesh_cell.py_func)
    assert "left = 256 - wp0 - wp1 - wp2 - wp3" in src and src.count("_cell_map(") == 12


def test_kernel_cache_is_keyed_on_the_whole_package(tmp_path):
    # numba keys a cached kernel on its own file only; ``reprojection._warp`` inlines sibling modules,
    # so the package's locator stamps all of them: any edit recompiles.
    from player.kernels import jit_cache, reprojection
    locator = reprojection._warp._cache._impl.locator
    assert isinstance(locator, (jit_cache.PackageInTreeLocator, jit_cache.PackageUserDirLocator)), type(locator)
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text("x = 1\n")
    before = jit_cache.package_stamp(tmp_path)
    (tmp_path / "b.py").write_text("x = 12\n")
    assert jit_cache.package_stamp(tmp_path) != before


_ALLOC_PROBE = """
import numpy as np
from numba import njit
from numba.core.runtime import rtsys
from player import kernels as K
from tests.test_player_kernels import _setup

@njit
def touch(*arrays):  # unboxing its array arguments is all this does: the baseline
    return len(arrays)

# The player's lattice at 512 px: stride 8 (PIXEL cells split), z-buffer cell 4.
intr, tintr, rgba, depth, w, src, tgt, hc = _setup(size=96, stride=4)
coarse = np.zeros((2, hc, hc), np.float32)
sc = K.warp_scratch(4, (96, 96), 8)
assert sc.split == 2
out = np.zeros((96, 96, 4), np.uint8)
spans = np.zeros((4, 96, 2), np.int32)  # as the renderer's: its buffers' row spans, all columns here
spans[:, :, 1] = 96
rows = K.splat_rows(96)
# The rest of the renderer's frame: a temporal blend of two tiles into a source buffer, the
# spans it writes, the warped frame's spans and the composite over a background.
src_rgba, src_depth = rgba[0].copy(), depth[0].copy()
held, wspans, cspans = spans[0].copy(), np.zeros((96, 2), np.int32), np.zeros((96, 2), np.int32)
image, tables = np.zeros((96, 96, 4), np.uint8), K.composite_tables((0.1, 0.2, 0.3))
words = lambda a: a.view(np.uint32).reshape(a.shape[:2])
def frame():
    K.write_spans(held, (spans[1], spans[2]), wspans)
    K.temporal_blend(rgba[1], rgba[2], depth[1], depth[2], 0.3, src_rgba, src_depth, spans=wspans)
    K.splat_depth(depth, w, src, tgt, 4, 1, coarse, sc.geo, spans=spans, rows=rows)
    K.warp(rgba, depth, w, src, tgt, coarse, 8, out, scratch=sc, zstride=4)
    K.warp_spans(sc, 8, 96, wspans)
    K.write_spans(held, (wspans,), cspans)
    K.composite(out, (0.1, 0.2, 0.3), image, spans=cspans, tables=tables)
splat_args = (depth, spans, w, *src, *tgt, coarse, sc.geo, *rows)
warp_args = (rgba, depth, w, *src, *tgt, coarse[0], sc.nodes, sc.node_z, sc.see, sc.mode, sc.used, sc.rem,
             sc.fmode, sc.fused, sc.frem, sc.geo, sc.vw8, sc.pts, sc.pgeo, out)
rest_args = ((held, spans[1], spans[2], spans[1], spans[1], wspans),
             (words(rgba[1]), words(rgba[2]), depth[1], depth[2], wspans, words(src_rgba), src_depth),
             (sc.mode, wspans), (held, wspans, wspans, wspans, wspans, cspans),
             (words(out), tables, cspans, words(image)))
def count(f):
    f()
    a = rtsys.get_allocation_stats().alloc
    f()
    return rtsys.get_allocation_stats().alloc - a
base = count(lambda: (touch(*splat_args), touch(*warp_args), [touch(*a) for a in rest_args]))
print(count(frame), base)
"""


def test_a_frame_allocates_nothing_in_the_kernels():
    # NRT statistics count every numba allocation; passing a numpy array in costs one (its
    # meminfo), so a frame's kernels (blend, splat, warp, spans, composite) must cost exactly
    # what unboxing their arguments costs.
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_NRT_STATS="1", PYTHONPATH=str(root))
    res = subprocess.run([sys.executable, "-c", _ALLOC_PROBE], capture_output=True, text=True, env=env, cwd=root)
    assert res.returncode == 0, res.stderr[-2000:]
    frame, base = (int(x) for x in res.stdout.split())
    assert base > 0 and frame == base, (frame, base)
