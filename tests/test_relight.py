"""Relighting (format 1.2): the light's fit on a Lambertian sphere, the relight kernel against its
twin, the gain rule, the light's sign conventions (player and `bake synth --light`), and files
without normals playing with the light control off."""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from bake.relight.fit import FitConfig, fit_light
from formats.camera import orbit_position
from formats.errors import UsageError
from formats.lighting import (direction, key_shading, lobe, oct_decode, oct_encode, pack_codes, relight_table,
                              sh_basis, shading)
from player import kernels as K
from player.light import Light, Relighter, parse_light, unavailable
from testkit.naive import relight as n_relight
from testkit.sample import SAMPLE_KEY, SAMPLE_SH, write_sample

KINDS4 = ("color", "alpha", "depth", "normal")


def _sphere_samples(key, amb, albedo_seed=0, size=48):
    """Tiles of a Lambertian sphere seen from 5 directions: (lum, normals, weight, chroma) per
    tile, lit by an ambient amb (Y00, Y1-1 coefficients) plus the key (yaw, pitch, amount, wrap),
    albedo 0.7 with a dark cap (hair) and specks of highlight the fit must ignore."""
    rng = np.random.default_rng(albedo_seed)
    yy, xx = np.mgrid[0:size, 0:size]
    u, v = (xx + 0.5) / size * 2 - 1, (yy + 0.5) / size * 2 - 1
    inside = u * u + v * v < 0.98
    out = []
    for view_yaw, view_pitch in ((0, 0), (-35, 0), (35, 0), (0, -20), (0, 25)):
        # normal in camera axes (x right, y up, z towards the camera), turned into the head frame
        nc = np.stack([u, -v, np.sqrt(np.clip(1 - u * u - v * v, 0, 1))], -1)
        fwd = direction(view_yaw, view_pitch)
        right = np.cross([0.0, 1.0, 0.0], fwd)
        right /= np.linalg.norm(right)
        up = np.cross(fwd, right)
        n = nc[..., :1] * right + nc[..., 1:2] * up + nc[..., 2:] * fwd
        light = sh_basis(n)[..., :2] @ np.asarray(amb) + key[2] * key_shading(n, direction(*key[:2]), key[3])
        hair = n[..., 1] > 0.75  # a dark brown cap of hair
        albedo = np.where(hair, 0.08, 0.7)
        lum = albedo * light
        specks = rng.random(inside.shape) < 0.03  # white highlights
        lum = np.where(specks, lum + 0.6, lum)
        chroma = np.where(hair[..., None], [0.5, 0.33, 0.17], [0.42, 0.32, 0.26])
        chroma = np.where(specks[..., None], 1 / 3, chroma)
        out.append((lum, np.where(inside[..., None], n, 0.0), inside.astype(float), chroma))
    return out


@pytest.mark.parametrize("key", [(23.0, 27.0, 0.7, 0.25), (-50.0, 5.0, 0.9, 0.25)])  # the fit holds skin's wrap
def test_fit_recovers_a_known_light_on_a_lambertian_sphere(key):
    amb = (0.38 / 0.282095, 0.12 / 0.488603)  # a mean and a sky above
    sh, got = fit_light(_sphere_samples(key, amb), FitConfig())
    # without the chromaticity (every material alike) the robust weights alone must cope
    assert fit_light([s[:3] for s in _sphere_samples(key, amb)])[1][:2] == pytest.approx(got[:2], abs=1.5)
    yaw, pitch, amount, wrap = got
    err = math.degrees(math.acos(min(1.0, float(direction(yaw, pitch) @ direction(*key[:2])))))
    assert err < 1.5, (got, key)
    assert wrap == key[3]
    # the scale is free (mean light 1): compare the key's share of the mean light
    true_mean = (amb[0] + key[2] * lobe(direction(*key[:2]), key[3])[0]) * 0.282095
    assert amount / (sh[0] * 0.282095) == pytest.approx(key[2] / true_mean, rel=0.05)
    # the stored sh is the ambient plus the key's projection, so the captured shading is recovered
    n = oct_decode(np.random.default_rng(1).integers(0, 256, (500, 2)))
    truth = sh_basis(n)[:, :2] @ np.asarray(amb) + key[2] * key_shading(n, direction(*key[:2]), key[3])
    s = shading(n, sh, got)
    assert np.abs(s / s.mean() - truth / truth.mean()).max() < 0.05


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_relight_kernel_matches_twin(scale):
    rng = np.random.default_rng(scale)
    h, w = 21, 30
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    rgba[..., :3] = np.minimum(rgba[..., :3], rgba[..., 3:])  # premultiplied
    rgba[rng.random((h, w)) < 0.2, :] = 0
    hs, ws = -(-h // scale), -(-w // scale)
    na, nb = (rng.integers(0, 65536, (hs, ws)).astype(np.uint16) for _ in range(2))
    table = rng.uniform(0, 4, 65536).astype(np.float32)
    spans = np.array([[rng.integers(-2, 10), rng.integers(12, w + 3)] for _ in range(h)], np.int32)
    spans[3] = (w, 0)
    for t in (0.0, 0.3, 1.0):
        got = rgba.copy()
        K.relight(got, na, nb, t, table, scale, spans, K.relight_scratch((hs, ws), scale))
        ref = n_relight.relight(rgba, na, nb, t, table, scale, np.clip(spans, 0, w), K.GUIDE_SIGMA)
        # float32 in the kernel, float64 in the twin: a colour may round the other way at .5
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
        assert (got.astype(int) != ref.astype(int)).mean() < 0.01
        assert (got[..., :3] <= got[..., 3:]).all()  # never above alpha
        assert np.array_equal(got[3], rgba[3])  # an empty span is left alone
    with pytest.raises(ValueError, match="normal codes"):
        K.relight(rgba, na[:-1], nb[:-1], 0.5, table, scale, spans, K.relight_scratch((hs, ws), scale))


@pytest.mark.parametrize("sigma", [8.0, 1e9])
def test_relight_kernel_honours_the_guide_scale(sigma):
    rng = np.random.default_rng(7)
    h, w, s = 24, 28, 4
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    rgba[..., :3] = np.minimum(rgba[..., :3], rgba[..., 3:])
    na = rng.integers(0, 65536, (h // s, w // s)).astype(np.uint16)
    table = rng.uniform(0, 4, 65536).astype(np.float32)
    spans = np.tile(np.array([0, w], np.int32), (h, 1))
    got = rgba.copy()
    K.relight(got, na, na, 0.0, table, s, spans, K.relight_scratch(na.shape, s), sigma=sigma)
    ref = n_relight.relight(rgba, na, na, 0.0, table, s, spans, sigma)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_gain_stays_on_its_side_of_a_colour_edge():
    """Skin and hair meet on a diagonal, each with its own normal: the gain of normals stored at
    1/4 must not smear across the edge, as bilinear gains between samples would (the seams
    along the jaw and hairline of a relit head). The reference relights with full-resolution
    normals."""
    h, w, s = 64, 64, 4
    yy, xx = np.mgrid[:h, :w]
    hair = xx + 0.6 * yy < 40.3
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[...] = (200, 150, 120, 255)
    rgba[hair] = (60, 40, 30, 255)
    codes = np.where(hair, 2000, 1000).astype(np.uint16)
    table = np.ones(65536, np.float32)
    table[1000], table[2000] = 1.2, 0.4
    spans = np.tile(np.array([0, w], np.int32), (h, 1))
    ref = rgba.copy()
    K.relight(ref, codes, codes, 0.0, table, 1, spans, K.relight_scratch(codes.shape, 1))
    stored = np.ascontiguousarray(codes[s // 2::s, s // 2::s])
    err = {}
    for name, sigma in (("guided", K.GUIDE_SIGMA), ("bilinear", 1e9)):
        got = rgba.copy()
        K.relight(got, stored, stored, 0.0, table, s, spans, K.relight_scratch(stored.shape, s), sigma=sigma)
        err[name] = np.abs(got[..., :3].astype(int) - ref[..., :3].astype(int)).max(-1)
    edge = np.abs(xx + 0.6 * yy - 40.3) < 4
    assert err["bilinear"][edge].mean() > 10  # the smear the guide must remove is there
    assert err["guided"][edge].mean() < 0.1 * err["bilinear"][edge].mean()
    assert err["guided"].max() <= 8


def test_gain_is_one_at_the_captured_light_and_follows_the_light():
    key = SAMPLE_KEY
    table = relight_table(SAMPLE_SH, key, key[0], key[1])
    assert np.abs(table - 1).max() < 1e-6
    assert np.allclose(Relighter({"sh": list(SAMPLE_SH), "key": list(key)}).table(Light(key[0], key[1])), table)
    # a light from the subject's left (+x) brightens normals facing +x and darkens those facing -x
    left = Relighter({"sh": list(SAMPLE_SH), "key": list(key)}).table(Light(80.0, 0.0))
    codes = pack_codes(oct_encode(np.array([[1.0, 0, 0.2], [-0.3, 0.3, 1.0]]) / [[1.0198], [1.0863]]))
    assert left[codes[0]] > 1.2 and left[codes[1]] < 0.8
    # a strength is in units of the captured mean light (sh[0] Y00): the captured key's amount
    # as a strength is the default; strength 0 leaves the ambient: every gain at most 1
    rl = Relighter({"sh": list(SAMPLE_SH), "key": list(key)})
    s = key[2] / (SAMPLE_SH[0] * 0.282095)
    assert np.allclose(rl.table(Light(-30.0, 10.0, s)), rl.table(Light(-30.0, 10.0)), atol=1e-5)
    assert rl.table(Light(-30.0, 10.0, 2 * s)).mean() > rl.table(Light(-30.0, 10.0)).mean()
    assert Relighter({"sh": list(SAMPLE_SH), "key": list(key)}).table(Light(0, 0, 0.0)).max() <= 1.0 + 1e-6
    # the projection of the wrapped lobe is its Funk-Hecke rule: lobe(d, 0) is Lambert's
    assert np.allclose(lobe(np.array([0, 0, 1.0]))[[0, 2, 6]], [math.pi * 0.282095, 2 * math.pi / 3 * 0.488603,
                                                                math.pi / 4 * 0.315392 * 2], rtol=1e-5)


def test_light_directions_follow_bake_render():
    for yaw, pitch in ((40.0, 10.0), (-70.0, -20.0), (0.0, 90.0)):
        d = orbit_position(yaw, pitch, 1.0)
        assert np.allclose(direction(yaw, pitch), d / np.linalg.norm(d))
    assert direction(90, 0)[0] > 0.99 and direction(0, 90)[1] > 0.99  # subject's left, above


def test_parse_light():
    assert parse_light("off") is None
    assert parse_light("30,-10") == Light(30.0, -10.0, None)
    assert parse_light("30,-10,0.5") == Light(30.0, -10.0, 0.5)
    for bad in ("30", "a,b", "30,120", "1,2,3,4", "30,10,-1"):
        with pytest.raises(UsageError, match="--light"):
            parse_light(bad)
    assert Light(170.0, 80.0, 0.5).moved(20.0, 30.0) == Light(-170.0, 90.0, 0.5)


def test_synth_light_follows_the_convention():
    """`bake synth --light 60,0` lights the subject's left (+x, the image's right in a frontal view)."""
    from bake.synthetic.capture import SynthConfig
    from bake.synthetic.field import SyntheticField
    from formats.camera import Camera, Intrinsics, orbit_pose
    cam = Camera(Intrinsics.from_fov(30, 48, 48), orbit_pose(0, 0, 0.5))
    halves = {}
    for yaw in (60.0, -60.0):
        head = SynthConfig(light=(yaw, 0.0)).head()
        assert np.allclose(head.light, direction(yaw, 0.0))
        rgb, a, _ = SyntheticField(head, supersample=1).render(cam, np.zeros(8))
        lum = rgb.sum(-1)
        halves[yaw] = lum[:, 24:].sum() - lum[:, :24].sum()  # image right (subject's left) minus left
    assert halves[60.0] > 0 > halves[-60.0]
    top, bottom = (SyntheticField(SynthConfig(light=(0.0, p)).head(), supersample=1).render(cam, np.zeros(8))[0]
                   .sum(-1) for p in (70.0, -70.0))
    assert top[:20].sum() > bottom[:20].sum()  # pitch > 0: from above, the forehead is lit


def _playback(path, light=None, size=None):
    from formats import P4DReader
    from player.playback import PlayConfig, Playback
    from player.render import RenderConfig
    return Playback(P4DReader(path), PlayConfig(mode="fixed", prefetch=False, light=light,
                                                render=RenderConfig(size=size)))


def test_an_older_file_plays_with_the_light_control_off(tmp_path, capsys):
    old = write_sample(tmp_path / "old.p4d", size=(24, 24))
    pb = _playback(old, Light(60.0, 0.0))
    assert pb.light is None and pb.relighter is None and "no normals" in pb.light_reason
    assert pb.set_light(Light(10.0, 0.0)) is False and pb.set_light(None) is True
    plain = _playback(old)
    assert np.array_equal(pb.render(), plain.render())
    pb.close()
    plain.close()
    from player.cli import main
    out = tmp_path / "still.png"
    assert main([str(old), "--mode", "fixed", "--export", str(out), "--light", "60,0", "-q"]) == 0
    err = capsys.readouterr().err
    assert out.exists() and err.count("\n") == 1 and "--light is unavailable" in err and "no normals" in err
    assert unavailable({"tiles": {"kinds": ["color"]}}) is not None


def test_a_relit_file_changes_with_the_light_and_not_at_the_captured_one(tmp_path):
    p = write_sample(tmp_path / "n.p4d", size=(40, 40), kinds=KINDS4, normal_scale=2,
                     codecs={"color": "png", "alpha": "png", "depth": "png", "normal": "webp"})
    plain = _playback(p)
    captured = _playback(p, Light(SAMPLE_KEY[0], SAMPLE_KEY[1]))
    moved = _playback(p, Light(-80.0, 0.0))
    a, b, c = (x.render().astype(int) for x in (plain, captured, moved))
    assert np.abs(a - b).max() <= 1  # gain 1: the captured light gives back the captured portrait
    assert np.abs(a - c).mean() > 3
    # the light control: moving it changes the next frame, off gives back the captured light
    assert moved.set_light(None) and np.abs(moved.render().astype(int) - a).max() == 0
    for x in (plain, captured, moved):
        x.close()


def test_the_window_light_drag_and_toggle(tmp_path):
    p = write_sample(tmp_path / "n.p4d", size=(24, 24), kinds=KINDS4)
    pb = _playback(p)
    assert pb.light_label() == "light captured"
    assert pb.drag_light(20.0, -10.0)  # right and down: towards the subject's left, lower
    assert pb.light == Light(SAMPLE_KEY[0] + 10.0, SAMPLE_KEY[1] - 5.0)
    assert pb.light_label() == f"light yaw {SAMPLE_KEY[0] + 10:+.0f} pitch {SAMPLE_KEY[1] - 5:+.0f}"
    assert pb.toggle_light() and pb.light is None
    assert pb.toggle_light() and pb.light == Light(SAMPLE_KEY[0] + 10.0, SAMPLE_KEY[1] - 5.0)
    pb.close()
    old = _playback(write_sample(tmp_path / "o.p4d", size=(24, 24)))
    assert not old.drag_light(5.0, 5.0) and not old.toggle_light() and old.light_label().startswith("light n/a")
    old.close()


def test_bake_normals_makes_an_older_file_relightable(tmp_path, capsys):
    from bake.cli.main import main as bake_main
    from formats import P4DReader
    from formats.camera import Camera, Intrinsics, orbit_pose, pixel_rays
    from formats.p4d import upsample_depth_nearest
    old = write_sample(tmp_path / "old.p4d", size=(40, 40), depth_scale=2, codecs={"color": "png", "alpha": "png",
                                                                                     "depth": "png"})
    out = tmp_path / "new.p4d"
    assert bake_main(["normals", str(old), "-o", str(out), "--normal-scale", "2", "-q"]) == 0
    with P4DReader(old) as a, P4DReader(out) as b:
        assert b.version == (1, 2) and b.normal_scale == 2 and b.lighting is not None
        g = b.meta["grid"]
        for v in range(b.n_views):
            for kind in a.kinds:  # every tile copied as it was
                assert a.tile_encoded(1, v, kind) == b.tile_encoded(1, v, kind)
            n = oct_decode(b.tile(1, v, "normal")[..., :2])
            cam = Camera(Intrinsics.from_dict(g["intrinsics"]), orbit_pose(g["yaws"][v], 0.0, g["radius"]))
            _, dirs = pixel_rays(cam)
            inside = upsample_depth_nearest(a.tile(1, v, "depth"), 2, (40, 40))[1::2, 1::2] > 0
            facing = -(n * dirs[1::2, 1::2]).sum(-1) / np.linalg.norm(dirs[1::2, 1::2], axis=-1)
            assert (facing[inside] > 0.2).mean() > 0.95  # normals of the surface face the camera that sees it
    capsys.readouterr()
    assert bake_main(["normals", str(out), "-o", str(tmp_path / "again.p4d")]) == 2
    err = capsys.readouterr().err
    assert "already has normals" in err and err.count("\n") == 1 and not (tmp_path / "again.p4d").exists()


def test_bake_normals_keeps_a_chained_files_chains(tmp_path):
    from bake.cli.main import main as bake_main
    from formats import P4DReader
    old = write_sample(tmp_path / "old.p4d", n_keyframes=5, size=(40, 40), depth_scale=2, chain=3, quality=90,
                       codecs={"color": "webp", "alpha": "png", "depth": "png"})
    out = tmp_path / "new.p4d"
    assert bake_main(["normals", str(old), "-o", str(out), "--normal-scale", "2", "-q"]) == 0
    with P4DReader(old) as a, P4DReader(out) as b:
        assert b.version == (1, 3) and b.chain == 3 and b.predicted(4, 1, "normal")
        for k in range(5):
            for v in range(b.n_views):
                for kind in a.kinds:  # copied as they were, predicted ones too
                    assert a.tile_encoded(k, v, kind) == b.tile_encoded(k, v, kind)
                    assert a.predicted(k, v, kind) == b.predicted(k, v, kind)
                    assert np.array_equal(a.tile(k, v, kind), b.tile(k, v, kind))


def test_a_light_that_cannot_be_fitted_is_flat():
    from bake.relight.fit import fit_tiles
    blank = {"color": np.zeros((8, 8, 3), np.uint8), "alpha": np.zeros((8, 8), np.uint8),
             "normal": np.full((2, 2, 3), 128, np.uint8)}
    meta = fit_tiles(lambda k, v, kind: blank[kind], 2, 3, 4)
    assert meta["key"][2] == 0.0 and meta["sh"][0] == pytest.approx(1 / 0.282095, rel=1e-5) and meta["sh"][1:] == [0] * 8


def test_bake_synth_light_flag(tmp_path, capsys):
    from bake.cli.main import main as bake_main
    from bake.fields.base import load_checkpoint
    out = tmp_path / "s"
    assert bake_main(["synth", "-o", str(out), "--seconds", "0.4", "--fps", "5", "--size", "32", "--light=-40,10",
                      "-q"]) == 0
    light = np.asarray(load_checkpoint(out / "subject.ckpt")["config"]["light"])
    assert np.allclose(light, direction(-40.0, 10.0), atol=1e-6)
    assert bake_main(["synth", "-o", str(tmp_path / "t"), "--light", "north"]) == 2
    assert "--light 'north'" in capsys.readouterr().err


def test_the_browser_guides_its_gains_as_the_kernel_does():
    """The web player's blend shader upsamples gains with the same guide scale as the kernel."""
    js = (Path(__file__).resolve().parents[1] / "player" / "web" / "js" / "lighting.js").read_text()
    m = re.search(r"export const GUIDE_SIGMA = ([0-9.]+);", js)
    assert m and float(m.group(1)) == K.GUIDE_SIGMA
