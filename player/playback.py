"""Playback state shared by the window, the exporter and the bench: viewpoint + walker + renderer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from player.cache import TileCache
from player.light import Light, Relighter, unavailable
from player.motion import CaptureReplay, Fixed, Orbit
from player.render import RenderConfig, Renderer
from player.walker import Walker

MODES = ("free", "capture", "orbit", "fixed")


@dataclass
class PlayConfig:
    mode: str = "orbit"
    """free (window: drag to orbit, auto-orbit when idle) | capture | orbit | fixed"""
    seed: int = 0
    """seed of the graph walk and of the capture replay"""
    yaw: float = 0.0
    """view for fixed mode (degrees)"""
    pitch: float = 0.0
    keyframe: int | None = None
    """the keyframe the walk starts at (default: keyframe 0, or its forced jump into the starting
    view's pose group)"""
    cache_mb: int = 256
    """memory bound of the decoded-tile cache"""
    prefetch: bool = True
    render: RenderConfig = RenderConfig()
    light: Light | None = None
    """relight to this key light (format 1.2 files only); None = the captured light"""


def nearest_group(centers: np.ndarray, yaw: float, pitch: float) -> int:
    """Pose group whose centre [G, 2] (yaw, pitch) is nearest to the viewpoint."""
    d = (centers[:, 0] - yaw) ** 2 + (centers[:, 1] - pitch) ** 2
    return int(np.argmin(d))


class Playback:
    """on_damaged(key, reason): called once per damaged tile (keyframe, view) met while playing
    (``TileCache``); playback goes on with a stand-in."""

    def __init__(self, source, config: PlayConfig = PlayConfig(), on_damaged=None):
        if config.mode not in MODES:
            raise ValueError(f"unknown mode {config.mode!r} (choose from {', '.join(MODES)})")
        self.source, self.config = source, config
        self.meta = source.meta
        self.cache = TileCache(source, config.cache_mb << 20, prefetch=config.prefetch, on_damaged=on_damaged)
        self.renderer = Renderer(self.meta, self.cache, config.render)
        self.centers = np.asarray(self.meta["graph"]["groups"]["centers"], np.float64).reshape(-1, 2)
        self.zoom = 1.0
        self.paused = False
        self.set_mode(config.mode)
        yaw, pitch = self.view()
        self.walker = Walker(self.meta, seed=config.seed, start_group=self.group_of(yaw, pitch),
                             start=config.keyframe)
        self.frames = 0
        # Relighting: why it is off for this file (one line), else the gain tables' source.
        self.light_reason = unavailable(self.meta)
        self.relighter = Relighter(self.meta["lighting"]) if self.light_reason is None else None
        self.light: Light | None = None
        self.set_light(config.light)

    def set_light(self, light: Light | None) -> bool:
        """Relight to ``light`` (None: the captured light). False, and nothing changes, when the
        file cannot be relit (``light_reason`` says why)."""
        if self.relighter is None:
            return light is None
        self.light = light
        self.renderer.set_light(None if light is None else self.relighter.table(light))
        return True

    def drag_light(self, dx: float, dy: float, degrees_per_px: float = 0.5) -> bool:
        """The window's light drag (shift + drag): right moves the light towards the subject's left
        (yaw up), up moves it above (pitch up); the first drag starts from the captured key light.
        False when the file cannot be relit."""
        if self.relighter is None:
            return False
        start = self.light or self.relighter.captured()
        return self.set_light(start.moved(dx * degrees_per_px, dy * degrees_per_px))

    def toggle_light(self) -> bool:
        """'l' in the window: the captured light <-> the last light set (or the captured key
        turned 45 degrees, the first time). False when the file cannot be relit."""
        if self.relighter is None:
            return False
        if self.light is not None:
            self._last_light = self.light
            return self.set_light(None)
        return self.set_light(getattr(self, "_last_light", None) or self.relighter.captured().moved(45.0, 0.0))

    def light_label(self) -> str:
        """The light as the HUD shows it."""
        if self.relighter is None:
            return "light n/a (no normals)"
        if self.light is None:
            return "light captured"
        return f"light yaw {self.light.yaw:+.0f} pitch {self.light.pitch:+.0f}"

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode == "capture":
            self.motion = CaptureReplay(self.meta, seed=self.config.seed)
        elif mode == "fixed":
            self.motion = Fixed(self.config.yaw, self.config.pitch)
        else:
            self.motion = Orbit(self.meta)
        self.manual: tuple[float, float] | None = None

    def view(self) -> tuple[float, float]:
        return self.manual if self.manual is not None else self.motion.view()

    def group_of(self, yaw: float, pitch: float) -> int:
        return nearest_group(self.centers, yaw, pitch)

    def step(self, dt: float) -> None:
        if self.paused:
            return
        if self.manual is None:
            self.motion.step(dt)
        yaw, pitch = self.view()
        self.walker.step(dt, self.group_of(yaw, pitch))

    def render(self) -> np.ndarray:
        """uint8 [H, W, 4] rows bottom-up, then queue decoding of what comes next."""
        yaw, pitch = self.view()
        img = self.renderer.render(yaw, pitch, self.zoom, self.walker.streams())
        self.frames += 1
        self.prefetch(yaw, pitch)
        return img

    def prefetch(self, yaw: float, pitch: float) -> None:
        """Ask the cache for what the next frames may draw, most urgent first: the keyframes of
        ``Walker.upcoming`` (its own order) in the views around the viewpoint, then in the views
        around where the viewpoint will be in ~0.3 s (so a grid-cell crossing finds its tiles
        ready; that view also tells which pose group a forced jump may enter)."""
        views = self.renderer.views_at(yaw, pitch)
        later: list[int] = []
        group_ahead = None
        if self.manual is None and not self.paused:
            ahead = _peek(self.motion, 0.3)
            later = [v for v in self.renderer.views_at(*ahead) if v not in views]
            group_ahead = self.group_of(*ahead)
        ks = self.walker.upcoming(group_ahead)
        self.cache.prefetch([(k, v) for vs in (views, later) for k in ks for v in vs])

    def close(self) -> None:
        self.cache.close()


def still(reader, keyframe: int, yaw: float, pitch: float, size: int | None = None,
          light: Light | None = None) -> np.ndarray:
    """uint8 RGB [H, W, 3], rows top-down: keyframe ``keyframe`` drawn at (yaw, pitch) as the
    fixed mode draws it (size None: the tiles' size), under ``light`` (None: the captured one)."""
    pb = Playback(reader, PlayConfig(mode="fixed", yaw=yaw, pitch=pitch, keyframe=keyframe, prefetch=False,
                                     render=RenderConfig(size=size), light=light))
    try:
        return np.ascontiguousarray(pb.render()[::-1, :, :3])
    finally:
        pb.close()


def _peek(motion, dt: float) -> tuple[float, float]:
    """The view ``dt`` seconds ahead without disturbing the motion (or its random draws)."""
    if isinstance(motion, Orbit):
        return Orbit.view(_Shifted(motion, dt))
    if isinstance(motion, CaptureReplay):
        n = len(motion.views)
        pos = min(max(motion.pos + motion.direction * dt * motion.fps, 0), n - 1)
        i = int(pos)
        j = min(i + 1, n - 1)
        t = pos - i
        y, p = (1 - t) * motion.views[i] + t * motion.views[j]
        return float(y), float(p)
    return motion.view()


class _Shifted:
    def __init__(self, orbit: Orbit, dt: float):
        self.__dict__.update(orbit.__dict__)
        self.t = orbit.t + dt
