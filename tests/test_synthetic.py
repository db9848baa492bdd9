"""The synthetic head: kernels vs numpy twin, exact depth, expression semantics, bake synth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bake.synthetic import EXPRESSION_NAMES, SyntheticField
from bake.synthetic import kernels as K
from testkit.naive import synthetic as N
from bake.synthetic.head import CAVITY, EAR_L, EYE_L, EYE_R, LOWER_LIP, UPPER_LIP
from bake.synthetic.motion import MotionConfig, capture_motion
from formats.camera import Camera, Intrinsics, orbit_pose, pixel_rays

E = {n: i for i, n in enumerate(EXPRESSION_NAMES)}


def expr(**kw) -> np.ndarray:
    e = np.zeros(len(EXPRESSION_NAMES), np.float32)
    for k, v in kw.items():
        e[E[k]] = v
    return e


def cam(size: int, yaw: float = 0.0, pitch: float = 0.0, radius: float = 0.5) -> Camera:
    return Camera(Intrinsics.from_fov(40, size, size), orbit_pose(yaw, pitch, radius))


def project(camera: Camera, p_head: np.ndarray) -> np.ndarray:
    """Pixel (u, v) of a head-frame point."""
    h2c = np.linalg.inv(camera.cam_to_head)
    pc = h2c[:3, :3] @ p_head + h2c[:3, 3]
    k = camera.intrinsics
    return np.array([k.fx * pc[0] / pc[2] + k.cx, k.fy * pc[1] / pc[2] + k.cy])


@pytest.fixture(scope="module")
def field() -> SyntheticField:
    # One ray per pixel: the sphere tracer's own contract, comparable ray for ray with the twin.
    return SyntheticField(supersample=1)


def _points(rng, n):
    """Points around the head and densely near the face."""
    far = rng.uniform([-0.22, -0.42, -0.2], [0.22, 0.2, 0.2], (n, 3))
    near = rng.normal([0, 0, 0.06], [0.05, 0.06, 0.035], (n, 3))
    return np.concatenate([far, near])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sdf_material_albedo_match_numpy_twin(field, seed):
    rng = np.random.default_rng(seed)
    e = np.zeros(8) if seed == 0 else rng.uniform(0, 1, 8)
    P, S = field.params(e)
    pts = _points(rng, 4000)
    d = np.empty(len(pts))
    K.sdf_points(P, S, pts, d)
    # The kernel's bounding-sphere skips must be exact, not approximations.
    np.testing.assert_allclose(d, N.sdf(P, S, pts), rtol=0, atol=1e-12)
    m = np.empty(len(pts), np.int64)
    K.material_points(P, S, pts, m)
    np.testing.assert_array_equal(m, N.material(P, S, pts))
    assert len(set(m.tolist())) >= 6  # the points reach most materials, so this compares something
    a = np.empty((len(pts), 3))
    K.albedo_points(P, S, m, pts, a)
    np.testing.assert_allclose(a, N.albedo(P, S, m, pts), rtol=0, atol=1e-9)


@pytest.mark.parametrize("yaw,pitch,e", [(0, 0, expr()), (40, -10, expr(jaw_open=0.8, smile=0.5)),
                                          (-70, 15, expr(blink_r=1, cheek_puff=1, brow_up=1))])
def test_render_matches_plain_sphere_tracing_twin(field, yaw, pitch, e):
    camera = cam(40, yaw, pitch)
    rgb, alpha, depth = field.render(camera, e)
    P, S = field.params(e)
    o, d = pixel_rays(camera)
    rgb2, alpha2, depth2 = N.render(P, S, o.reshape(-1, 3), d.reshape(-1, 3), 1.0 / camera.intrinsics.fx)
    hit, hit2 = alpha.ravel() == 1, alpha2 == 1
    assert hit.sum() > 300
    assert (hit != hit2).sum() <= 2  # only a ray grazing within the hit tolerance may differ
    both = hit & hit2
    # Both stop within 4e-3 px of distance; at grazing angles that is more along the ray, and
    # the kernel's secant steps land closer to the surface than plain steps: allow 0.1 px.
    footprint = depth2[both] / camera.intrinsics.fx
    assert np.all(np.abs(depth.ravel()[both] - depth2[both]) < 0.1 * footprint)
    assert np.median(np.abs(depth.ravel()[both] - depth2[both])) < 0.01 * np.median(footprint)
    assert np.abs(rgb.reshape(-1, 3)[both] - rgb2[both]).mean() < 2e-3
    assert np.abs(alpha.ravel() - alpha2).mean() < 0.01


def test_render_contract_and_determinism(field):
    camera = cam(64, 20, 5)
    e = expr(smile=0.7, jaw_open=0.3)
    rgb, alpha, depth = field.render(camera, e)
    assert rgb.shape == (64, 64, 3) and alpha.shape == depth.shape == (64, 64)
    assert rgb.dtype == alpha.dtype == depth.dtype == np.float32
    assert 0 <= rgb.min() and rgb.max() <= 1 and 0 <= alpha.min() and alpha.max() <= 1
    assert np.all(rgb <= alpha[..., None] + 1e-6)  # premultiplied
    assert np.all((depth == 0) == (alpha == 0))
    assert (alpha == 1).mean() > 0.2 and (alpha == 0).mean() > 0.2
    again = field.render(camera, e)
    for a, b in zip((rgb, alpha, depth), again):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("yaw,pitch,e", [(0, 0, expr()), (35, 12, expr(jaw_open=1.0)),
                                          (-50, -15, expr(pucker=1, blink_l=0.5)), (180, 30, expr())])
def test_depth_of_opaque_pixels_lies_on_the_surface(field, yaw, pitch, e):
    camera = cam(96, yaw, pitch)
    _, alpha, depth = field.render(camera, e)
    o, d = pixel_rays(camera)
    on = alpha == 1
    assert on.sum() > 1000
    pts = o[on] + depth[on][:, None].astype(np.float64) * d[on]
    # float32 depth at ~0.45 m is good to ~0.03 um; the hit tolerance is 4e-3 px (~15 um).
    assert np.abs(field.sdf(pts, e)).max() < 5e-5
    # Silhouette pixels just outside carry partial alpha and a depth near the head.
    edge = (alpha > 0) & (alpha < 1)
    assert edge.sum() > 20 and np.all(depth[edge] > 0.3)


def _changed(field, camera, a, b):
    """Pixels whose colour moves by more than 2.5 levels of 255. (Far away, an expression can
    still shift where the marching steps fall and so a hit by a few micrometres; on fine
    texture that is ~1e-3 in colour, invisible after 8-bit quantisation.)"""
    ra, _, _ = field.render(camera, a)
    rb, _, _ = field.render(camera, b)
    return np.abs(ra - rb).max(axis=-1) > 0.01


def _near(mask, centre, radius):
    v, u = np.nonzero(mask)
    return np.hypot(u + 0.5 - centre[0], v + 0.5 - centre[1]) < radius


def test_blink_changes_eye_pixels_and_not_the_ears(field):
    camera = cam(128, 35, 5)  # both eyes and the subject's left ear in view
    P, _ = field.params(expr())
    changed = _changed(field, camera, expr(), expr(blink_l=1, blink_r=1))
    assert changed.sum() > 20
    px_per_m = camera.intrinsics.fx / 0.5
    eyes = _near(changed, project(camera, P[EYE_L, :3]), 0.025 * px_per_m) | \
        _near(changed, project(camera, P[EYE_R, :3]), 0.025 * px_per_m)
    assert eyes.all()  # every changed pixel is around an eye
    # The visible ear (the far one is hidden behind the head and projects onto the face).
    ear = project(camera, P[EAR_L, :3])
    _, alpha, depth = field.render(camera, expr())
    assert alpha[int(ear[1]), int(ear[0])] == 1 and depth[int(ear[1]), int(ear[0])] < 0.47
    assert not _near(changed, ear, 0.03 * px_per_m).any()


def test_blink_left_is_the_subjects_left_eye(field):
    camera = cam(128)  # frontal: the subject's left (+x) is image right
    changed = _changed(field, camera, expr(), expr(blink_l=1))
    u = np.nonzero(changed)[1]
    assert len(u) > 10 and np.all(u > 64)


def test_jaw_open_changes_the_mouth_and_shows_its_inside(field):
    camera = cam(128, 0, 0)
    P, _ = field.params(expr())
    changed = _changed(field, camera, expr(), expr(jaw_open=1))
    mouth = 0.5 * (P[UPPER_LIP, :3] + P[LOWER_LIP, :3])
    c = project(camera, mouth)
    v, u = np.nonzero(changed)
    assert changed.sum() > 100
    assert abs(np.median(u) + 0.5 - c[0]) < 4 and abs(np.median(v) + 0.5 - c[1]) < 12
    assert project(camera, P[EYE_L, :3])[1] < v.min()  # nothing above the eyes moves
    # The opened mouth shows dark interior right at the centre of the opening.
    rgb, _, _ = field.render(camera, expr(jaw_open=1))
    closed, _, _ = field.render(camera, expr())
    c = project(camera, field.params(expr(jaw_open=1))[0][CAVITY, :3])
    cu, cv_ = int(c[0]), int(c[1])
    assert rgb[cv_ - 2:cv_ + 3, cu - 2:cu + 3].mean() < 0.5 * closed[cv_ - 2:cv_ + 3, cu - 2:cu + 3].mean()


def test_supersampled_render_averages_sub_pixel_rays_and_keeps_pixel_centre_depth():
    camera = cam(64, 25, 8)
    e = expr(smile=0.6, blink_l=0.4)
    rgb, alpha, depth = SyntheticField(supersample=2).render(camera, e)
    point = SyntheticField(supersample=1)
    k = camera.intrinsics
    fine = Camera(k.scaled(128, 128), camera.cam_to_head)
    rgb_f, alpha_f, depth_f = point.render(fine, e)
    np.testing.assert_allclose(rgb, rgb_f.reshape(64, 2, 64, 2, 3).mean((1, 3)), atol=1e-6)
    np.testing.assert_allclose(alpha, alpha_f.reshape(64, 2, 64, 2).mean((1, 3)), atol=1e-6)
    assert np.all(rgb <= alpha[..., None] + 1e-6)  # still premultiplied
    _, _, depth_c = point.render(camera, e)
    centre = (depth_c > 0) & (alpha > 0)
    assert centre.sum() > 1000 and np.array_equal(depth[centre], depth_c[centre])
    assert np.all((depth > 0) == (alpha > 0))
    # Pixels whose centre misses but a sub-pixel ray hits take the nearest sub-pixel depth.
    rim = (depth_c == 0) & (alpha > 0)
    assert rim.sum() >= 5  # the case occurs (10 pixels here), so the next line checks something
    near = np.where(depth_f > 0, depth_f, np.inf).reshape(64, 2, 64, 2).min((1, 3))
    np.testing.assert_array_equal(depth[rim], near[rim])
    # Antialiasing: closer to a 4 x 4 supersampled image than one ray per pixel is.
    ref, _, _ = SyntheticField(supersample=4).render(camera, e)
    one, _, _ = point.render(camera, e)
    assert np.abs(rgb - ref).mean() < 0.6 * np.abs(one - ref).mean()


def test_supersample_is_validated():
    with pytest.raises(ValueError, match="supersample"):
        SyntheticField(supersample=0)


def test_expression_is_validated(field):
    with pytest.raises(ValueError, match="8"):
        field.render(cam(16), np.zeros(5))


def test_motion_covers_the_pose_range_and_blinks():
    t, c2h, e = capture_motion(MotionConfig(seconds=20, fps=25, seed=3))
    assert c2h.shape == (500, 4, 4) and e.shape == (500, 8)
    from formats.camera import view_angles
    ang = np.array([view_angles(p) for p in c2h])
    assert ang[:, 0].min() < -30 and ang[:, 0].max() > 30
    assert ang[:, 1].min() < -12 and ang[:, 1].max() > 12
    assert np.all((0.45 < ang[:, 2]) & (ang[:, 2] < 0.6))
    assert e.min() >= 0 and e.max() <= 1 and np.all(e.max(axis=0) > 0.4)
    shut = e[:, E["blink_l"]] > 0.5
    starts = t[1:][shut[1:] & ~shut[:-1]]
    assert len(starts) >= 3 and np.all(np.diff(starts) > 1.9) and np.all(np.diff(starts) < 6.2)
    # Same seed, same motion; another seed, another.
    t2, c2, e2 = capture_motion(MotionConfig(seconds=20, fps=25, seed=3))
    assert np.array_equal(c2h, c2) and np.array_equal(e, e2)
    assert not np.array_equal(e, capture_motion(MotionConfig(seconds=20, fps=25, seed=4))[2])


# ---------------------------------------------------------------------------------------------
# bake synth end to end (small)


def _synth(tmp_path, name, *extra):
    from bake.cli import main
    out = tmp_path / name
    rc = main(["synth", "-o", str(out), "--seconds", "1.2", "--fps", "10", "--size", "48", "-q", *extra])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def synth_dirs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("synth")
    return _synth(tmp, "a"), _synth(tmp, "b"), _synth(tmp, "c", "--seed", "5")


def test_synth_writes_dataset_video_and_checkpoint(synth_dirs):
    import cv2
    from bake.data.load import load_dataset
    out = synth_dirs[0]
    ds = load_dataset(out)
    assert len(ds.frames) == 12 and ds.width == ds.height == 48
    assert ds.expression_names == EXPRESSION_NAMES and ds.expression_space == "synthetic-8"
    assert ds.split["test"] == [11] and 11 not in ds.split["train"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left behind
    cap = cv2.VideoCapture(str(out / "capture.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 12
    # The saved mask is exactly the field's coverage at the saved pose and expression, and the
    # image's foreground is the field's colour (up to JPEG).
    field = SyntheticField()
    for i in (0, 7):
        camera = Camera(ds.intrinsics, np.linalg.inv(ds.frames[i].pose))
        rgb, alpha, _ = field.render(camera, ds.frames[i].expression)
        mask = ds.load_mask(i)
        assert np.mean((mask > 127) != (alpha >= 0.5)) < 0.003  # json rounding of the pose
        img = ds.load_image(i).astype(np.float32) / 255
        fg = alpha == 1
        assert np.abs(img[fg] - rgb[fg]).mean() < 0.04


def test_synth_is_deterministic_and_seeded(synth_dirs):
    a, b, c = synth_dirs
    assert (a / "dataset.json").read_bytes() == (b / "dataset.json").read_bytes()
    for sub in ("images", "masks"):
        names = sorted(p.name for p in (a / sub).iterdir())
        assert names == sorted(p.name for p in (b / sub).iterdir())
        for name in names:
            assert (a / sub / name).read_bytes() == (b / sub / name).read_bytes()
    ea = [f["expression"] for f in json.loads((a / "dataset.json").read_text())["frames"]]
    ec = [f["expression"] for f in json.loads((c / "dataset.json").read_text())["frames"]]
    assert ea != ec


def test_checkpoint_loads_safely_and_as_a_field(synth_dirs):
    import torch
    from bake.fields.registry import load_field
    out = synth_dirs[0]
    ckpt = torch.load(out / "subject.ckpt", weights_only=True)
    assert ckpt["kind"] == "synthetic" and ckpt["format"] == "portrait4d-ckpt"
    field = load_field(out / "subject.ckpt")
    assert field.kind == "synthetic" and field.expression_names == EXPRESSION_NAMES
    cap = field.capture
    assert cap.width == 48 and cap.poses.shape == (12, 4, 4) and cap.expressions.shape == (12, 8)
    from bake.data.load import load_dataset
    ds = load_dataset(out)
    np.testing.assert_allclose(cap.poses, ds.poses(), atol=1e-7)
    np.testing.assert_allclose(cap.expressions, ds.expressions(), atol=1e-6)
    np.testing.assert_allclose(ckpt["expression_range"]["max"].numpy(), cap.expressions.max(0))


def test_synth_errors_are_one_line(tmp_path, capsys):
    from bake.cli import main
    assert main(["synth", "-o", str(tmp_path / "x"), "--size", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bake synth: error:") and "size must be in [16, 2048]" in err and "\n" not in err
    out = tmp_path / "y"
    out.mkdir()
    (out / "dataset.json").write_text("{}")
    assert main(["synth", "-o", str(out), "--seconds", "0.1", "--size", "32", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err and "\n" not in err
    assert (out / "dataset.json").read_text() == "{}"
    assert main(["synth", "-o", str(tmp_path / "z"), "--seconds", "0"]) == 2
    assert "seconds must be in (0, 600]" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["synth", "-o", str(tmp_path / "file" / "sub"), "-q"]) == 2
    assert "cannot create the output folder" in capsys.readouterr().err


def test_synth_configs_check_themselves_when_built_in_python():
    from bake.synthetic.capture import SynthConfig
    from bake.synthetic.head import HeadConfig
    for kwargs, message in [({"seconds": 0.0}, "seconds"), ({"fps": 500.0}, "fps"), ({"distance": 0.0}, "distance")]:
        with pytest.raises(ValueError, match=message):
            MotionConfig(**kwargs)
    for kwargs, message in [({"size": 8}, "size"), ({"fov_deg": 170.0}, "fov_deg"), ({"jpeg_quality": 0}, "jpeg_quality")]:
        with pytest.raises(ValueError, match=message):
            SynthConfig(**kwargs)
    with pytest.raises(ValueError, match="light"):
        HeadConfig(light=(0.0, 0.0, 0.0))
    assert HeadConfig.from_dict(HeadConfig().to_dict()) == HeadConfig()


def test_bounding_volumes_hold_the_whole_head(field):
    """Rays missing the bounding volumes are never marched, so every point of the head must lie
    inside them, for any expression (extremes included)."""
    rng = np.random.default_rng(7)
    lo, hi = np.array([-0.25, -0.45, -0.25]), np.array([0.25, 0.25, 0.25])
    for e in (np.zeros(8), np.ones(8), expr(jaw_open=1, pucker=1, cheek_puff=1), rng.uniform(0, 1, 8)):
        P, S = field.params(e)
        pts = rng.uniform(lo, hi, (60000, 3))
        solid = pts[N.sdf(P, S, pts) <= 1e-3]
        assert len(solid) > 1000
        in_box = np.zeros(len(solid), bool)
        for b in (K.NECK_BOX, K.TORSO_BOX):
            in_box |= np.all((solid >= b[:3]) & (solid <= b[3:]), axis=1)
        scale = np.linalg.norm((solid - K.HEAD_CENTER) / np.asarray(K.HEAD_RADII), axis=1)
        assert np.all(in_box | (scale < 0.985))
