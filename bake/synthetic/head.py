"""The synthetic head's geometry: an identity of oriented ellipsoids, deformed per expression.

Everything here is small numpy run once per render call; the per-pixel work is in
sdf.py, albedo.py and kernels.py.
The head frame is formats/camera.py's: metres, origin at the head centre, +x towards the
subject's left, +y up, +z out of the face. The head is ~0.16 m wide and ~0.24 m chin to crown.

A render reads two arrays:
  prims   float64 [N_PRIMS, 20]: per ellipsoid, centre (0:3), world->local rotation rows each
          divided by its radius (3:12, so M @ (p - c) lands in the unit sphere's frame), radii
          (12:15), bounding radius (15) = max radius R, inverse radii (16:19), R / min radius (19).
  scalars float64 [N_SCALARS]: lid planes, mouth bend, hairline, brow/smile state, light.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXPRESSION_NAMES = ["jaw_open", "smile", "blink_l", "blink_r", "brow_up", "brow_frown",
                    "pucker", "cheek_puff"]
"""Expression coefficients in [0, 1], 0 = neutral. ``_l``/``_r`` are the subject's left/right
(head +x / -x), matching ARKit's eyeBlinkLeft/Right."""

# Primitive rows (the kernel hard-codes how they combine; see sdf.sdf).
(CRANIUM, FACE, JAW, CHIN, CHEEK_L, CHEEK_R, BROW_RIDGE, NOSE_BRIDGE, NOSE_TIP, NOSTRIL_L,
 NOSTRIL_R, UPPER_LIP, LOWER_LIP, CORNER_L, CORNER_R, EAR_L, EAR_R, EARCUP_L, EARCUP_R, NECK,
 SOCKET_L, SOCKET_R, CAVITY, EYE_L, EYE_R, TEETH_UP, TEETH_LOW, TONGUE, HAIR, TORSO) = range(30)
N_PRIMS = 30
PRIM_COLS = 20

# Scalar slots.
S_LID = 0  # 4 lids x (nx, ny, nz): upper L, lower L, upper R, lower R; lid = sphere ∩ {n·q > 0}
S_RLID = 12  # lid sphere radius (eyeball radius + lid thickness)
S_BEND = 13  # mouth bend b: mouth primitives live in (x, y - b*clamp(x)^2, z) (smile curves)
S_BENDK = 14  # 1 / Lipschitz constant of that bend, scales mouth distances back to a bound
S_HAIR = 15  # hairline h0, s, u, x0, 1/norm: hair kept where y > h0 + s*z + u*max(|x|-x0, 0)
S_BROW_UP = 20
S_BROW_FROWN = 21
S_SMILE = 22
S_JAW = 23
S_LIGHT = 24  # unit key-light direction in the head frame (3)
S_GAZE = 27  # unit gaze direction of both eyes (3)
S_BEND_X = 30  # |x| clamp of the bend
S_GROUP = 32  # bounding spheres (cx, cy, cz, radius, max R/min radius) of groups, GROUPS order
GROUPS = (
    (CHIN, CHEEK_L, CHEEK_R, BROW_RIDGE),
    (NOSE_BRIDGE, NOSE_TIP, NOSTRIL_L, NOSTRIL_R),
    (UPPER_LIP, LOWER_LIP, CORNER_L, CORNER_R),
    (EAR_L, EARCUP_L),
    (EAR_R, EARCUP_R),
)
G_MID, G_NOSE, G_MOUTH, G_EAR_L, G_EAR_R = range(len(GROUPS))
N_SCALARS = S_GROUP + 5 * len(GROUPS)

BEND_CLAMP = 0.04  # metres: the bend stops growing beyond the mouth's width


@dataclass(frozen=True)
class HeadConfig:
    """The fixed identity and lighting of the synthetic subject (plain types: it rides in the ckpt)."""

    light: tuple[float, float, float] = (0.35, 0.45, 0.82)
    """key-light direction in the head frame (normalised); light is fixed to the head"""
    jaw_max_deg: float = 13.0
    """jaw rotation at jaw_open = 1"""
    gaze_distance: float = 0.5
    """eyes converge on a point this far in front of the head (m)"""

    def __post_init__(self) -> None:
        light = np.asarray(self.light, dtype=np.float64)
        if light.shape != (3,) or not np.isfinite(light).all() or not np.linalg.norm(light) > 0:
            raise ValueError(f"light must be a non-zero direction (x, y, z), got {self.light!r}")
        if not 0 <= self.jaw_max_deg <= 45:
            raise ValueError(f"jaw_max_deg must be in [0, 45], got {self.jaw_max_deg}")
        if not self.gaze_distance > 0:
            raise ValueError(f"gaze_distance must be > 0, got {self.gaze_distance}")

    def to_dict(self) -> dict:
        return {"light": list(self.light), "jaw_max_deg": self.jaw_max_deg,
                "gaze_distance": self.gaze_distance}

    @staticmethod
    def from_dict(d: dict) -> "HeadConfig":
        return HeadConfig(tuple(float(v) for v in d.get("light", (0.35, 0.45, 0.82))),
                          float(d.get("jaw_max_deg", 13.0)), float(d.get("gaze_distance", 0.5)))


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


class _Prims:
    """Mutable [N_PRIMS] table of (centre [3], local->world rotation [3, 3], radii [3])."""

    def __init__(self) -> None:
        self.c = np.zeros((N_PRIMS, 3))
        self.rot = np.tile(np.eye(3), (N_PRIMS, 1, 1))
        self.r = np.ones((N_PRIMS, 3))

    def set(self, i: int, c, r, rot=None, mirror_of: int | None = None) -> None:
        self.c[i], self.r[i] = c, r
        self.rot[i] = np.eye(3) if rot is None else rot
        if mirror_of is not None:  # the subject's right side is the mirror image in x
            m = np.diag([-1.0, 1.0, 1.0])
            self.c[mirror_of] = self.c[i] * [-1, 1, 1]
            self.r[mirror_of] = self.r[i]
            self.rot[mirror_of] = m @ self.rot[i] @ m

    def pack(self) -> np.ndarray:
        out = np.zeros((N_PRIMS, PRIM_COLS))
        out[:, 0:3] = self.c
        world_to_local = np.transpose(self.rot, (0, 2, 1))
        out[:, 3:12] = (world_to_local / self.r[:, :, None]).reshape(N_PRIMS, 9)
        out[:, 12:15] = self.r
        out[:, 15] = self.r.max(axis=1)
        out[:, 16:19] = 1.0 / self.r
        out[:, 19] = self.r.max(axis=1) / self.r.min(axis=1)
        return out


def _identity() -> _Prims:
    p = _Prims()
    p.set(CRANIUM, (0, 0.022, -0.012), (0.075, 0.092, 0.098))
    p.set(FACE, (0, -0.026, 0.018), (0.067, 0.067, 0.068))
    p.set(JAW, (0, -0.059, 0.004), (0.061, 0.041, 0.068))
    p.set(CHIN, (0, -0.089, 0.052), (0.025, 0.019, 0.026))
    p.set(CHEEK_L, (0.041, -0.017, 0.054), (0.030, 0.024, 0.027), mirror_of=CHEEK_R)
    p.set(BROW_RIDGE, (0, 0.030, 0.066), (0.058, 0.014, 0.022))
    p.set(NOSE_BRIDGE, (0, 0.0015, 0.0965), (0.0075, 0.027, 0.011), _rx(np.radians(-26)))
    p.set(NOSE_TIP, (0, -0.021, 0.108), (0.012, 0.011, 0.012))
    p.set(NOSTRIL_L, (0.011, -0.026, 0.098), (0.009, 0.007, 0.009), mirror_of=NOSTRIL_R)
    p.set(UPPER_LIP, (0, -0.049, 0.0825), (0.022, 0.0055, 0.0080))
    p.set(LOWER_LIP, (0, -0.0595, 0.0795), (0.020, 0.0065, 0.0080))
    p.set(CORNER_L, (0.024, -0.055, 0.071), (0.008, 0.008, 0.008), mirror_of=CORNER_R)
    ear_rot = _ry(np.radians(-12)) @ _rx(np.radians(-15))
    p.set(EAR_L, (0.077, -0.002, -0.012), (0.009, 0.031, 0.019), ear_rot, mirror_of=EAR_R)
    p.set(EARCUP_L, (0.0855, -0.005, -0.010), (0.006, 0.017, 0.0105), ear_rot, mirror_of=EARCUP_R)
    p.set(NECK, (0, -0.135, -0.030), (0.056, 0.110, 0.056))
    p.set(SOCKET_L, (0.032, 0.011, 0.075), (0.016, 0.0095, 0.011), mirror_of=SOCKET_R)
    p.set(CAVITY, (0, -0.0545, 0.086), (0.021, 0.0012, 0.020))
    p.set(EYE_L, (0.032, 0.011, 0.061), (0.0125, 0.0125, 0.0125), mirror_of=EYE_R)
    p.set(TEETH_UP, (0, -0.051, 0.070), (0.019, 0.0045, 0.012))
    p.set(TEETH_LOW, (0, -0.059, 0.068), (0.017, 0.0042, 0.012))
    p.set(TONGUE, (0, -0.066, 0.052), (0.018, 0.008, 0.022))
    p.set(HAIR, (0, 0.027, -0.014), (0.083, 0.100, 0.106))
    p.set(TORSO, (0, -0.290, -0.035), (0.200, 0.110, 0.105))
    return p


def _lid_normal(phi_deg: float, upper: bool, roll_deg: float) -> np.ndarray:
    """Plane through the eye centre holding the x axis, its front edge at elevation phi."""
    phi = np.radians(phi_deg)
    n = np.array([0.0, np.cos(phi), -np.sin(phi)])
    if not upper:
        n = -n
    return _rz(np.radians(roll_deg)) @ n


def head_params(expression: np.ndarray, cfg: HeadConfig = HeadConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Primitive table [N_PRIMS, PRIM_COLS] and scalars [N_SCALARS] for one expression [8] in [0, 1]."""
    e = np.clip(np.asarray(expression, dtype=np.float64).reshape(-1), 0.0, 1.0)
    if e.shape != (len(EXPRESSION_NAMES),):
        raise ValueError(f"expression has {e.size} values, the synthetic head takes "
                         f"{len(EXPRESSION_NAMES)} ({', '.join(EXPRESSION_NAMES)})")
    jaw, smile, blink_l, blink_r, brow_up, frown, pucker, puff = e
    p = _identity()

    # Jaw: the mandible and what hangs on it turn about a hinge in front of the ears.
    hinge = np.array([0.0, -0.010, -0.020])
    rj = _rx(np.radians(cfg.jaw_max_deg) * jaw)
    lip_low0 = p.c[LOWER_LIP].copy()
    for i in (JAW, CHIN, LOWER_LIP, TEETH_LOW, TONGUE):
        p.c[i] = hinge + rj @ (p.c[i] - hinge)
        p.rot[i] = rj @ p.rot[i]
    drop = lip_low0[1] - p.c[LOWER_LIP][1]

    # Lips: smile widens them, pucker narrows and pushes them out, puff pushes them a little.
    for i in (UPPER_LIP, LOWER_LIP):
        p.r[i, 0] *= (1 + 0.15 * smile) * (1 - 0.32 * pucker)
        p.r[i, 2] *= 1 + 0.25 * pucker
        p.r[i, 1] *= 1 + 0.15 * pucker
        p.c[i, 2] += 0.007 * pucker + 0.002 * puff
    for i, s in ((CORNER_L, 1), (CORNER_R, -1)):
        p.c[i] += (s * (0.004 * smile - 0.008 * pucker), 0.004 * smile, 0.002 * smile)

    # Mouth opening: a thin slit between the lips that opens with the jaw.
    up_bottom = p.c[UPPER_LIP, 1] - 0.4 * p.r[UPPER_LIP, 1]
    low_top = p.c[LOWER_LIP, 1] + 0.4 * p.r[LOWER_LIP, 1]
    p.c[CAVITY] = (0.0, 0.5 * (up_bottom + low_top), 0.083 + 0.006 * pucker - 0.004 * jaw)
    p.r[CAVITY] = (0.0165 * (1 + 0.15 * smile) * (1 - 0.55 * pucker),
                   0.0012 + 0.45 * drop + 0.003 * pucker, 0.020 + 0.006 * jaw)

    # Cheeks: a smile lifts them, a puff inflates them.
    for i, s in ((CHEEK_L, 1), (CHEEK_R, -1)):
        p.c[i] += (s * (0.003 * smile + 0.005 * puff), 0.005 * smile - 0.004 * puff,
                   0.003 * smile + 0.004 * puff)
        p.r[i] *= (1 + 0.22 * puff, 1 + 0.10 * puff, 1 + 0.22 * puff)

    # Brows: the ridge follows them a little; their colour is drawn from the scalars.
    p.c[BROW_RIDGE] += (0.0, 0.003 * brow_up - 0.002 * frown, 0.002 * frown)

    s = np.zeros(N_SCALARS)
    squint = 4.0 * smile
    lids = ((28 + 4 * brow_up - 6 * frown, -30 + squint, blink_l, 1),
            (28 + 4 * brow_up - 6 * frown, -30 + squint, blink_r, -1))
    for k, (up, low, b, side) in enumerate(lids):
        # Closed lids overlap by 2 degrees so a full blink leaves no gap.
        up_phi = up + (-21 - up) * b
        low_phi = low + (-19 - low) * b
        roll = 5.0 * side  # outer corners slightly higher
        s[S_LID + 6 * k: S_LID + 6 * k + 3] = _lid_normal(up_phi, True, roll)
        s[S_LID + 6 * k + 3: S_LID + 6 * k + 6] = _lid_normal(low_phi, False, roll)
    s[S_RLID] = p.r[EYE_L, 0] + 0.0013

    bend = 7.0 * smile * (1 - 0.7 * pucker)
    c = 2.0 * bend * BEND_CLAMP
    s[S_BEND] = bend
    s[S_BENDK] = 1.0 / np.sqrt((2 + c * c + c * np.sqrt(c * c + 4)) / 2)  # 1 / max singular value
    s[S_BEND_X] = BEND_CLAMP
    for g, members in enumerate(GROUPS):
        # Mouth primitives live in bent space: a world point is at most bend*clamp^2 closer.
        slack = bend * BEND_CLAMP ** 2 if g == G_MOUTH else 0.0
        centre = p.c[list(members)].mean(axis=0)
        radius = max(np.linalg.norm(p.c[m] - centre) + p.r[m].max() for m in members) + slack
        elong = max(p.r[m].max() / p.r[m].min() for m in members)
        s[S_GROUP + 5 * g: S_GROUP + 5 * g + 5] = (*centre, radius, elong)
    h0, slope, u, x0 = 0.0125, 0.75, 1.1, 0.05
    s[S_HAIR:S_HAIR + 5] = (h0, slope, u, x0, 1.0 / np.sqrt(1 + slope * slope + u * u))
    s[S_BROW_UP], s[S_BROW_FROWN], s[S_SMILE], s[S_JAW] = brow_up, frown, smile, jaw
    light = np.asarray(cfg.light, dtype=np.float64)
    s[S_LIGHT:S_LIGHT + 3] = light / np.linalg.norm(light)
    gaze = np.array([0.0, 0.0, cfg.gaze_distance]) - p.c[EYE_L] * [0, 1, 1]
    s[S_GAZE:S_GAZE + 3] = gaze / np.linalg.norm(gaze)
    return p.pack(), s
