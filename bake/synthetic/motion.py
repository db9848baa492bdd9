"""Seeded head motion and expression dynamics of a synthetic selfie capture (pure numpy).

The camera orbits the head (in the head frame the head is still and the phone moves): yaw
sweeps about +-35 degrees with a period under 10 s, pitch about +-15 degrees with a period
under 7 s, so a 20 s capture covers both ranges; on top, slow hand-held wobble in roll,
distance and aim. Expressions: blinks every 2-6 s, talking-like jaw motion in spells, a few
smiles, brow raises, a frown, a pucker and a cheek puff, all from one seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bake.synthetic.head import EXPRESSION_NAMES
from formats.camera import orbit_pose

_E = {name: i for i, name in enumerate(EXPRESSION_NAMES)}


@dataclass(frozen=True)
class MotionConfig:
    """How the synthetic subject moves during the capture."""

    seconds: float = 20.0
    """capture length"""
    fps: float = 25.0
    """frame rate"""
    seed: int = 0
    """seed of every random choice (same seed, same capture)"""
    yaw_deg: float = 35.0
    """amplitude of the yaw sweep"""
    pitch_deg: float = 15.0
    """amplitude of the pitch sweep"""
    distance: float = 0.52
    """phone distance from the head centre (m)"""

    def __post_init__(self) -> None:
        if not 0 < self.seconds <= 600:
            raise ValueError(f"seconds must be in (0, 600], got {self.seconds:g}")
        if not 1 <= self.fps <= 120:
            raise ValueError(f"fps must be in [1, 120], got {self.fps:g}")
        if not 0 <= self.yaw_deg <= 80 or not 0 <= self.pitch_deg <= 80:
            raise ValueError(f"yaw_deg and pitch_deg must be in [0, 80], got {self.yaw_deg:g}, {self.pitch_deg:g}")
        if not 0.2 <= self.distance <= 5.0:
            raise ValueError(f"distance must be in [0.2, 5] m, got {self.distance:g}")


def _wobble(rng: np.random.Generator, t: np.ndarray, n: int = 4, fmin: float = 0.08,
            fmax: float = 0.6) -> np.ndarray:
    """Smooth zero-mean noise in about [-1, 1]: a few sines with random frequencies and phases."""
    f = rng.uniform(fmin, fmax, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    amp = rng.uniform(0.5, 1.0, n)
    return (amp[:, None] * np.sin(2 * np.pi * f[:, None] * t[None] + ph[:, None])).sum(0) / amp.sum()


def _pulse(t: np.ndarray, start: float, rise: float, hold: float, fall: float) -> np.ndarray:
    """0 -> 1 -> 0 envelope with smoothstep edges. Shape of t."""
    up = np.clip((t - start) / rise, 0, 1)
    down = np.clip((start + rise + hold + fall - t) / fall, 0, 1)
    s = np.minimum(up, down)
    return s * s * (3 - 2 * s)


def _episodes(rng: np.random.Generator, seconds: float, per_10s: float, length: float) -> np.ndarray:
    """Start times of non-overlapping-ish episodes spread over the capture."""
    n = max(1, int(round(seconds / 10.0 * per_10s)))
    slots = np.linspace(0, max(seconds - length, 0.0), n + 1)
    return np.array([rng.uniform(slots[i], max(slots[i + 1] - 0.2, slots[i])) for i in range(n)])


def capture_motion(cfg: MotionConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times [N] s, cam_to_head [N, 4, 4], expressions [N, 8] float32 in [0, 1])."""
    n = max(1, int(round(cfg.seconds * cfg.fps)))
    t = np.arange(n) / cfg.fps
    rng = np.random.default_rng(cfg.seed)

    # Pose: full sweeps plus hand-held wobble.
    yaw_period = rng.uniform(7.5, 9.5)
    pitch_period = rng.uniform(5.0, 6.5)
    yaw = cfg.yaw_deg * np.sin(2 * np.pi * t / yaw_period + rng.uniform(0, 2 * np.pi))
    yaw += 2.0 * _wobble(rng, t)
    pitch = cfg.pitch_deg * np.sin(2 * np.pi * t / pitch_period + rng.uniform(0, 2 * np.pi))
    pitch += 1.5 * _wobble(rng, t)
    roll = 3.0 * _wobble(rng, t, fmax=0.4)
    dist = cfg.distance * (1 + 0.03 * _wobble(rng, t, fmax=0.3))
    aim = 0.006 * np.stack([_wobble(rng, t), _wobble(rng, t), _wobble(rng, t)], axis=-1)
    poses = np.empty((n, 4, 4))
    for i in range(n):
        c2h = orbit_pose(yaw[i], pitch[i], dist[i], center=aim[i])
        r = np.radians(roll[i])
        spin = np.eye(4)
        spin[:2, :2] = [[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]]  # about the optical axis
        poses[i] = c2h @ spin

    e = np.zeros((n, len(EXPRESSION_NAMES)))
    # Blinks every 2-6 s: 80 ms closing, 50 ms shut, 150 ms opening.
    tb = rng.uniform(0.4, 2.5)
    while tb < cfg.seconds:
        b = _pulse(t, tb, 0.08, 0.05, 0.15)
        e[:, _E["blink_l"]] = np.maximum(e[:, _E["blink_l"]], b)
        e[:, _E["blink_r"]] = np.maximum(e[:, _E["blink_r"]], b * rng.uniform(0.9, 1.0))
        tb += rng.uniform(2.0, 6.0)
    # Talking: spells of 2-4 s with 1-2.5 s pauses; syllables at ~4-5 Hz of varying size.
    talk = np.zeros(n)
    ts = rng.uniform(0.0, 1.5)
    while ts < cfg.seconds:
        length = rng.uniform(2.0, 4.0)
        talk = np.maximum(talk, _pulse(t, ts, 0.2, length, 0.3))
        ts += length + 0.5 + rng.uniform(1.0, 2.5)
    rate = rng.uniform(3.8, 4.8)
    syll = 0.5 - 0.5 * np.cos(2 * np.pi * rate * t + 1.5 * _wobble(rng, t, fmax=1.0))
    size = 0.55 + 0.45 * _wobble(rng, t, n=5, fmin=0.5, fmax=2.0)
    e[:, _E["jaw_open"]] = talk * np.clip(0.08 + 0.6 * syll * size, 0, 1)
    e[:, _E["pucker"]] = talk * 0.35 * np.clip(_wobble(rng, t, fmin=0.8, fmax=2.5), 0, 1)
    # Episodes: smiles, brow raises, a frown, a deliberate pucker, a cheek puff.
    for name, per_10s, (rise, hold, fall), peak in (
            ("smile", 1.0, (0.5, 2.0, 0.8), (0.6, 0.95)),
            ("brow_up", 1.5, (0.25, 0.7, 0.4), (0.5, 1.0)),
            ("brow_frown", 0.5, (0.3, 1.0, 0.5), (0.5, 0.85)),
            ("pucker", 0.5, (0.3, 0.8, 0.4), (0.7, 0.95)),
            ("cheek_puff", 0.5, (0.3, 0.8, 0.4), (0.7, 1.0))):
        for start in _episodes(rng, cfg.seconds, per_10s, rise + hold + fall):
            hold_i = hold * rng.uniform(0.7, 1.4)
            k = _E[name]
            e[:, k] = np.maximum(e[:, k], rng.uniform(*peak) * _pulse(t, start, rise, hold_i, fall))
    return t, poses, np.clip(e, 0, 1).astype(np.float32)
