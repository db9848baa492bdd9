// Where the viewpoint is (player/motion.py): a slow auto-orbit, a fixed view, or the captured
// head motion replayed. Each has step(dt) and view() -> [yaw, pitch] in degrees.

import { Pcg32 } from "./rng.js";

/** [yaw centre, yaw half-range, pitch centre, pitch half-range] of the baked view grid. */
export function gridSpan(meta) {
  const ys = meta.grid.yaws, ps = meta.grid.pitches;
  return [0.5 * (ys[0] + ys[ys.length - 1]), 0.5 * (ys[ys.length - 1] - ys[0]),
          0.5 * (ps[0] + ps[ps.length - 1]), 0.5 * (ps[ps.length - 1] - ps[0])];
}

/** The pose group whose centre is nearest the viewpoint (the first of equals). */
export function nearestGroup(centers, yaw, pitch) {
  let best = 0, bestD = Infinity;
  centers.forEach(([cy, cp], i) => {
    const dy = cy - yaw, dp = cp - pitch;
    const d = dy * dy + dp * dp;
    if (d < bestD) { best = i; bestD = d; }
  });
  return best;
}

/** A slow Lissajous sweep over 80 % of the grid: one yaw period every ``period`` seconds. */
export class Orbit {
  constructor(meta, period = 12, phase = 0) {
    [this.yc, this.yr, this.pc, this.pr] = gridSpan(meta);
    this.period = period;
    this.t = phase;
  }
  step(dt) { this.t += dt; }
  viewAt(t) {
    const a = 2 * Math.PI * t / this.period;
    return [this.yc + 0.8 * this.yr * Math.sin(a), this.pc + 0.8 * this.pr * Math.sin(0.61 * a)];
  }
  view() { return this.viewAt(this.t); }
  peek(dt) { return this.viewAt(this.t + dt); }
}

export class Fixed {
  constructor(yaw = 0, pitch = 0) { this.yaw = yaw; this.pitch = pitch; }
  step() {}
  view() { return [this.yaw, this.pitch]; }
  peek() { return this.view(); }
}

/** The captured head motion, forward or backward, switching direction with probability
 * p_switch per keyframe step and at the ends; draws from PCG32 stream 1 of the seed. */
export class CaptureReplay {
  constructor(meta, seed = 0) {
    this.views = meta.keyframes.capture_view;
    this.fps = meta.keyframes.fps;
    this.pSwitch = "pose_switch_prob" in meta.graph ? meta.graph.pose_switch_prob : 0.03;
    this.rng = new Pcg32(seed, 1);
    this.pos = 0;
    this.direction = 1;
  }
  step(dt) {
    const n = this.views.length;
    if (n < 2) return;
    let remaining = dt * this.fps;
    while (remaining > 0) {
      const frac = this.pos - Math.floor(this.pos);
      const toNext = this.direction > 0 ? 1 - frac : (frac > 0 ? frac : 1);
      const d = Math.min(toNext, remaining);
      this.pos += this.direction * d;
      remaining -= d;
      if (d === toNext) {
        this.pos = Math.round(this.pos);
        const atEnd = (this.pos >= n - 1 && this.direction > 0) || (this.pos <= 0 && this.direction < 0);
        if (atEnd || this.rng.random() < this.pSwitch) this.direction = -this.direction;
      }
    }
  }
  viewAtPos(pos) {
    const i = Math.floor(pos), j = Math.min(i + 1, this.views.length - 1), t = pos - i;
    return [(1 - t) * this.views[i][0] + t * this.views[j][0], (1 - t) * this.views[i][1] + t * this.views[j][1]];
  }
  view() { return this.viewAtPos(this.pos); }
  peek(dt) {
    const n = this.views.length;
    return this.viewAtPos(Math.min(Math.max(this.pos + this.direction * dt * this.fps, 0), n - 1));
  }
}
