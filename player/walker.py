"""The graph walker (Video Textures + Kimura et al.): which keyframes to show, and when to jump.

Plain Python, seeded, no clock of its own (its random draws come from ``player.rng.Pcg32``,
stream 0, the generator docs/walk.md specifies, so the browser player walks the same way):
``step(dt, group)`` advances it by ``dt`` seconds with the viewpoint in pose group ``group``;
``streams()`` says what to draw. A pyglet ``EventDispatcher`` (pyglet.event needs no display)
emitting ``on_jump(kind, src, dst)`` with kind "transition" or "forced", and ``on_keyframe(k)``.

Rules:
- keyframes advance at the baked fps; between keyframes k and k+1 the frame is a temporal blend;
- arriving at the end of keyframe k, each baked transition (k -> dst, p) is taken with probability
  p (the last keyframe has no k+1, so its transitions are renormalised and one is always taken);
- when the viewpoint enters another pose group g, the walk jumps at once to forced[k][g]
  (-1: k already belongs to g, nothing to do);
- every jump crossfades from the stream it leaves (which keeps playing forward) to the new one
  over ``morph_seconds``; a transition drawn or a pose-group change made while a crossfade runs
  is carried out when it ends, so a fade is never cut (and no draw is skipped, so the jump rates
  are the baked ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyglet.event import EventDispatcher

from player.rng import Pcg32


@dataclass
class Stream:
    """Keyframe ``k`` blending into ``nxt`` at ``phase`` in [0, 1)."""

    k: int
    nxt: int
    phase: float = 0.0


@dataclass
class WalkStats:
    offers: dict = field(default_factory=dict)  # k -> times a transition from k was offered
    taken: dict = field(default_factory=dict)  # (k, dst) -> times taken
    forced: list = field(default_factory=list)  # (time, src, dst, group)
    visits: np.ndarray | None = None  # [K] times each keyframe was entered
    suppressed: int = 0  # transition draws skipped because a crossfade was running


class Walker(EventDispatcher):
    def __init__(self, meta: dict, seed: int = 0, start_group: int | None = None,
                 morph_seconds: float | None = None, start: int | None = None):
        """start: the first keyframe (default 0, or the forced jump of keyframe 0 into
        ``start_group``); the player's ``--keyframe``."""
        kf, graph = meta["keyframes"], meta["graph"]
        self.n = len(kf["times"])
        self.fps = float(kf["fps"])
        self.pose_group = [int(g) for g in kf["pose_group"]]
        self.forced = [[int(t) for t in row] for row in graph["forced"]]
        baked = float(graph.get("morph_seconds", 0.2))
        self.morph_seconds = max(baked, float(morph_seconds or 0.0), 1e-3)
        self.transitions: list[list[tuple[int, float]]] = [[] for _ in range(self.n)]
        for src, dst, prob, _cost in graph["transitions"]:
            if 0 <= int(src) < self.n and 0 <= int(dst) < self.n and prob > 0:
                self.transitions[int(src)].append((int(dst), float(prob)))
        self.rng = Pcg32(seed, 0)
        self.time = 0.0
        self.group = start_group
        if start is not None:
            if not 0 <= start < self.n:
                raise ValueError(f"keyframe {start} is outside 0..{self.n - 1}")
        else:
            start = 0
            if start_group is not None and self.pose_group[0] != start_group and self.forced[0][start_group] >= 0:
                start = self.forced[0][start_group]
        self.main = Stream(start, self._natural(start))
        self.old: Stream | None = None
        self.fade = 1.0  # weight of ``main``; < 1 while crossfading from ``old``
        self._pending_group: int | None = None
        self._pending_jump: int | None = None
        self.stats = WalkStats(visits=np.zeros(self.n, np.int64))
        self.stats.visits[start] += 1
        self.jumps = 0

    def _natural(self, k: int) -> int:
        return k + 1 if k + 1 < self.n else k

    def _draw_successor(self, k: int) -> int | None:
        """The jump target after keyframe k, or None to go on to k + 1: one draw r of the
        generator, and the first transition whose running sum of probabilities exceeds r. In
        plain floats summed in order (docs/walk.md), so the browser's walk adds up the same."""
        opts = self.transitions[k]
        if not opts:
            return None
        total = 1.0
        if k + 1 >= self.n:  # no natural successor: a transition is certain
            total = 0.0
            for _, p in opts:
                total += p
        self.stats.offers[k] = self.stats.offers.get(k, 0) + 1
        r = self.rng.random()
        c = 0.0
        for dst, p in opts:
            c += p / total
            if r < c:
                self.stats.taken[(k, dst)] = self.stats.taken.get((k, dst), 0) + 1
                return dst
        return None

    def _jump(self, dst: int, kind: str) -> None:
        src = self.main.k
        self.old = self.main
        self.main = Stream(dst, self._natural(dst))
        self.fade = 0.0
        self.jumps += 1
        self.stats.visits[dst] += 1
        self.dispatch_event("on_jump", kind, src, dst)

    def _advance(self, s: Stream, steps: float, main: bool) -> None:
        s.phase += steps
        while s.phase >= 1.0:
            s.phase -= 1.0
            k = s.k
            if main and self._pending_jump is None:
                dst = self._draw_successor(k)
                if dst is not None and self.old is None:
                    self._jump(dst, "transition")
                    self.old.k, self.old.nxt = self.old.nxt, self._natural(self.old.nxt)
                    self.old.phase = s.phase
                    self.main.phase = s.phase
                    return
                if dst is not None:
                    # A crossfade is running: take the jump when it ends, never cut a fade.
                    self._pending_jump = dst
            elif main and self.transitions[k]:
                self.stats.suppressed += 1
            if k + 1 >= self.n and main:
                # Last keyframe with its jump waiting for a fade to end: hold it.
                s.phase = min(s.phase, 0.999)
                return
            s.k, s.nxt = s.nxt, self._natural(s.nxt)
            if main:
                self.stats.visits[s.k] += 1
                self.dispatch_event("on_keyframe", s.k)

    def step(self, dt: float, group: int | None = None) -> None:
        """Advance ``dt`` seconds with the viewpoint in pose group ``group``."""
        self.time += dt
        if group is not None and group != self.group:
            self.group = group
            self._pending_group = group
        if self.old is not None:
            self.fade = min(1.0, self.fade + dt / self.morph_seconds)
            self._advance(self.old, dt * self.fps, main=False)
            if self.fade >= 1.0:
                self.old = None
        if self._pending_jump is not None and self.old is None:
            dst, self._pending_jump = self._pending_jump, None
            phase = self.main.phase
            self._jump(dst, "transition")
            self.main.phase = phase
        if self._pending_group is not None and self.old is None:
            g = self._pending_group
            self._pending_group = None
            dst = self.forced[self.main.k][g] if g < len(self.forced[self.main.k]) else -1
            if dst >= 0 and self.pose_group[self.main.k] != g:
                self.stats.forced.append((self.time, self.main.k, dst, g))
                phase = self.main.phase
                self._jump(dst, "forced")
                self.main.phase = phase
        self._advance(self.main, dt * self.fps, main=True)

    def streams(self) -> list[tuple[int, int, float, float]]:
        """What to draw: [(k, nxt, phase, weight)], weights summing to 1 (old stream first)."""
        out = []
        if self.old is not None and self.fade < 1.0:
            out.append((self.old.k, self.old.nxt, self.old.phase, 1.0 - self.fade))
        out.append((self.main.k, self.main.nxt, self.main.phase, self.fade if out else 1.0))
        return out

    def chain(self, k: int) -> list[int]:
        """k and the two keyframes after it: what a stream that enters k at any phase draws
        before it leaves k's successor (a jump keeps its phase, so its fade may draw k's
        successor, and soon the one after, from its first frame)."""
        n1 = self._natural(k)
        return [k, n1, self._natural(n1)]

    def upcoming(self, group_ahead: int | None = None) -> list[int]:
        """Keyframes worth decoding ahead: each stream's ``chain``, and the chain of each jump
        target that may land soon: the transitions drawn at the end of this keyframe or the
        next (one drawn during a fade waits for it to end, then lands at any phase), a jump
        waiting now, and the forced jump into a pose group the viewpoint has entered (waiting
        for a fade) or is about to enter (``group_ahead``, the group of the viewpoint a moment
        from now)."""
        ks = []
        for s in ([self.main] + ([self.old] if self.old is not None else [])):
            ks += self.chain(s.k)
        for k in (self.main.k, self.main.nxt):
            for d, _ in self.transitions[k]:
                ks += self.chain(d)
        if self._pending_jump is not None:
            ks += self.chain(self._pending_jump)
        for g in (self._pending_group, group_ahead if group_ahead != self.group else None):
            if g is None:
                continue
            for k in (self.main.k, self.main.nxt):
                t = self.forced[k][g] if g < len(self.forced[k]) else -1
                if t >= 0:
                    ks += self.chain(t)
        return list(dict.fromkeys(ks))


Walker.register_event_type("on_jump")
Walker.register_event_type("on_keyframe")
