"""The pyglet 2 window: one texture updated in place per frame, drawn by one sprite in one batch.

pyglet.window is imported only inside ``run`` so that ``import player.window`` works without a
display (tests/test_rooms.py imports every module headless).

Keys: drag = orbit, shift + drag = move the light (format 1.2 files), l = light on/off, wheel =
zoom, arrows = nudge, space = pause, m = mode, h = HUD, s = screenshot, f = fullscreen, q / esc = quit.
"""

from __future__ import annotations

import ctypes
import time
from pathlib import Path

import cv2
import numpy as np

from formats.atomic import atomic_path
from formats.errors import UsageError
from player.playback import Playback

MODE_CYCLE = ("free", "capture", "fixed")
IDLE_SECONDS = 3.0  # free mode: auto-orbit resumes this long after the last drag
COMFORT_SIDE = 512  # a window's longest side at least this, where the screen fits it
SCREEN_FILL = 0.9  # ... and at most this share of the screen


def comfortable_size(tile_hw: tuple[int, int], screen_wh: tuple[int, int], side: int = COMFORT_SIDE,
                     fill: float = SCREEN_FILL) -> int:
    """The longest side, in pixels, to play a portrait of tiles ``tile_hw`` (H, W) at in a window
    on a screen ``screen_wh`` (W, H): the tile's own, scaled up to ``side`` (a 256 px tile is a
    small square on today's screens), but never past ``fill`` of the screen (a tile larger than
    that is scaled down to fit).

    >>> comfortable_size((256, 256), (1920, 1080)), comfortable_size((64, 80), (320, 240))
    (512, 270)
    """
    h, w = tile_hw
    sw, sh = screen_wh
    fit = min(fill * sw / w, fill * sh / h)
    scale = min(max(1.0, side / max(h, w)), fit)
    return max(8, int(max(h, w) * scale))


def screen_size() -> tuple[int, int] | None:
    """(W, H) of the default screen, or None when there is no display."""
    try:
        import pyglet
        screen = pyglet.display.get_display().get_default_screen()
        return int(screen.width), int(screen.height)
    except Exception:  # pyglet raises several types when there is no X server / DISPLAY
        return None


class NoDisplayError(RuntimeError):
    pass


def run(pb: Playback, title: str = "Portrait4D", frames: int | None = None,
        screenshot: str | None = None, hud: bool = False) -> int:
    """Open the window and play until closed. ``frames``: quit after drawing that many frames
    (tests); ``screenshot``: save the framebuffer there when quitting that way."""
    try:
        import pyglet
        from pyglet import gl
        display = pyglet.display.get_display()
        screen = display.get_default_screen()
    except Exception as exc:  # pyglet raises several types when there is no X server / DISPLAY
        raise NoDisplayError(f"no display available ({type(exc).__name__}: {exc})") from None

    h, w = pb.renderer.out_shape

    class PlayerWindow(pyglet.window.Window):
        def __init__(self):
            super().__init__(width=w, height=h, caption=title, resizable=True, vsync=False)
            self.set_location(max(0, (screen.width - w) // 2), max(0, (screen.height - h) // 2))
            self.batch = pyglet.graphics.Batch()
            self.texture = pyglet.image.Texture.create(w, h, internalformat=gl.GL_RGBA8)
            self.sprite = pyglet.sprite.Sprite(self.texture, batch=self.batch)
            self.hud = pyglet.text.Label("", x=8, y=8, font_size=11, color=(255, 255, 255, 230),
                                         batch=self.batch)
            self.hud.visible = hud
            self.last_drag = -1e9
            self.said_light = False  # the light control's one-line reason, said once
            self.drawn = 0
            self.fps = 0.0
            self.jumps = 0
            self.mode_i = MODE_CYCLE.index(pb.mode) if pb.mode in MODE_CYCLE else 0
            pb.walker.push_handlers(on_jump=self.on_jump)
            self._upload(pb.render())
            pyglet.clock.schedule_interval(self.update, 1 / 60.0)

        def on_jump(self, kind, src, dst):
            self.jumps += 1

        def _upload(self, img: np.ndarray) -> None:
            gl.glBindTexture(self.texture.target, self.texture.id)
            gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)
            gl.glTexSubImage2D(self.texture.target, 0, 0, 0, w, h, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE,
                               img.ctypes.data_as(ctypes.POINTER(ctypes.c_ubyte)))

        def update(self, dt: float) -> None:
            if pb.mode == "free" and pb.manual is not None and time.monotonic() - self.last_drag > IDLE_SECONDS:
                pb.manual = None  # idle: back to the slow auto-orbit
            pb.step(dt)
            self._upload(pb.render())
            self.fps = 0.9 * self.fps + 0.1 * (1.0 / dt if dt > 0 else 0.0)
            if self.hud.visible:
                k = pb.walker.main.k
                yaw, pitch = pb.view()
                self.hud.text = (f"{self.fps:5.1f} fps  keyframe {k}/{pb.walker.n - 1}  jumps {self.jumps}  "
                                 f"{pb.mode}{' (paused)' if pb.paused else ''}  yaw {yaw:+.1f} pitch {pitch:+.1f}  "
                                 f"hit {pb.cache.stats()['hit_rate']:.0%}  {pb.light_label()}")

        def on_draw(self):
            self.clear()
            self.batch.draw()
            self.drawn += 1
            if frames is not None and self.drawn >= frames:
                if screenshot:
                    self.save_screenshot(screenshot)
                pyglet.app.exit()  # closing here would change app.windows while pyglet iterates it

        def on_resize(self, width, height):
            super().on_resize(width, height)
            # Fit the image, keep its aspect, centre it.
            s = min(width / w, height / h)
            self.sprite.scale = s
            self.sprite.position = ((width - w * s) / 2, (height - h * s) / 2, 0)

        def save_screenshot(self, path: str) -> None:
            fb_w, fb_h = self.get_framebuffer_size()
            buf = (ctypes.c_ubyte * (fb_w * fb_h * 4))()
            gl.glReadPixels(0, 0, fb_w, fb_h, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE, buf)
            img = np.frombuffer(buf, np.uint8).reshape(fb_h, fb_w, 4)[::-1]
            try:
                with atomic_path(path) as tmp:
                    if not cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGBA2BGR)):
                        raise OSError(f"{path}: could not write the image")
            except (OSError, UsageError) as exc:  # a failed screenshot must not end the playback
                print(f"player: screenshot not saved: {exc}")
                return
            print(f"player: screenshot {path}")

        def on_mouse_drag(self, x, y, dx, dy, buttons, modifiers):
            if modifiers & pyglet.window.key.MOD_SHIFT:
                if not pb.drag_light(dx, dy) and not self.said_light:
                    print(f"player: the light control is unavailable: {pb.light_reason}")
                    self.said_light = True
                return
            yaw, pitch = pb.view()
            pb.manual = (yaw - 0.3 * dx, float(np.clip(pitch - 0.3 * dy, -89, 89)))
            self.last_drag = time.monotonic()

        def on_mouse_scroll(self, x, y, scroll_x, scroll_y):
            pb.zoom = float(np.clip(pb.zoom * 1.1 ** scroll_y, 0.5, 4.0))

        def on_key_press(self, symbol, modifiers):
            key = pyglet.window.key
            if symbol in (key.Q, key.ESCAPE):
                self.close()
            elif symbol == key.SPACE:
                pb.paused = not pb.paused
            elif symbol == key.M:
                self.mode_i = (self.mode_i + 1) % len(MODE_CYCLE)
                pb.set_mode(MODE_CYCLE[self.mode_i])
            elif symbol == key.H:
                self.hud.visible = not self.hud.visible
            elif symbol == key.L:
                if not pb.toggle_light() and not self.said_light:
                    print(f"player: the light control is unavailable: {pb.light_reason}")
                    self.said_light = True
            elif symbol == key.S:
                self.save_screenshot(_free_name("player-shot", ".png"))
            elif symbol == key.F:
                self.set_fullscreen(not self.fullscreen)
            elif symbol in (key.LEFT, key.RIGHT, key.UP, key.DOWN):
                yaw, pitch = pb.view()
                d = {key.LEFT: (-2, 0), key.RIGHT: (2, 0), key.UP: (0, 2), key.DOWN: (0, -2)}[symbol]
                pb.manual = (yaw + d[0], float(np.clip(pitch + d[1], -89, 89)))
                self.last_drag = time.monotonic()
            return pyglet.event.EVENT_HANDLED

    try:
        win = PlayerWindow()
    except Exception as exc:
        raise NoDisplayError(f"cannot open a window ({type(exc).__name__}: {exc})") from None
    try:
        pyglet.app.run(1 / 60.0)
    finally:
        pyglet.clock.unschedule(win.update)
        if not win.has_exit:
            win.close()
    return 0


def _free_name(stem: str, ext: str) -> str:
    i = 0
    while Path(f"{stem}-{i:04d}{ext}").exists():
        i += 1
    return f"{stem}-{i:04d}{ext}"
