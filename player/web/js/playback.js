// Playback state (player/playback.py): the viewpoint's motion, a manual view while dragging,
// zoom, pause, and the walker, stepped together.

import { CaptureReplay, Fixed, Orbit, nearestGroup } from "./motion.js";
import { Walker } from "./walker.js";

export const MODES = ["free", "capture", "orbit", "fixed"];

export class Playback {
  /** opts: {mode, seed, yaw, pitch, keyframe, paused, onKeyframe, onJump} */
  constructor(meta, opts) {
    this.meta = meta;
    this.opts = opts;
    this.centers = meta.graph.groups.centers;
    this.zoom = 1;
    this.paused = !!opts.paused;
    this.setMode(opts.mode);
    const [yaw, pitch] = this.view();
    this.walker = new Walker(meta, { seed: opts.seed, startGroup: this.groupOf(yaw, pitch), start: opts.keyframe,
                                     onKeyframe: opts.onKeyframe, onJump: opts.onJump });
  }

  setMode(mode) {
    if (!MODES.includes(mode)) throw new Error(`unknown mode ${mode} (choose from ${MODES.join(", ")})`);
    this.mode = mode;
    this.motion = mode === "capture" ? new CaptureReplay(this.meta, this.opts.seed)
      : mode === "fixed" ? new Fixed(this.opts.yaw, this.opts.pitch) : new Orbit(this.meta);
    this.manual = null;
  }

  view() { return this.manual ?? this.motion.view(); }

  groupOf(yaw, pitch) { return nearestGroup(this.centers, yaw, pitch); }

  step(dt) {
    if (this.paused) return;
    if (this.manual === null) this.motion.step(dt);
    const [yaw, pitch] = this.view();
    this.walker.step(dt, this.groupOf(yaw, pitch));
  }

  /** [k, v] worth decoding ahead, most urgent first (player/playback.py prefetch): the walker's
   * upcoming keyframes in the views around the viewpoint, then around where it will be in 0.3 s. */
  upcoming(viewsAt) {
    const [yaw, pitch] = this.view();
    const views = viewsAt(yaw, pitch);
    let later = [], groupAhead = null;
    if (this.manual === null && !this.paused) {
      const ahead = this.motion.peek(0.3);
      later = viewsAt(...ahead).filter((v) => !views.includes(v));
      groupAhead = this.groupOf(...ahead);
    }
    const ks = this.walker.upcoming(groupAhead);
    const out = [];
    for (const vs of [views, later]) for (const k of ks) for (const v of vs) out.push([k, v]);
    return out;
  }
}
