// The graph walker (player/walker.py, docs/walk.md): which keyframes to show and when to jump.
// The same rules, in the same order, with the same generator, so a seed walks the same way in
// both players. Events: onKeyframe(k) when the walk enters keyframe k on its own, onJump(kind,
// src, dst) for a transition or a forced jump into another pose group.

import { Pcg32 } from "./rng.js";

class Stream {
  constructor(k, nxt, phase = 0) { this.k = k; this.nxt = nxt; this.phase = phase; }
}

export class Walker {
  constructor(meta, { seed = 0, startGroup = null, start = null, onKeyframe = () => {}, onJump = () => {} } = {}) {
    const kf = meta.keyframes, graph = meta.graph;
    this.n = kf.times.length;
    this.fps = kf.fps;
    this.poseGroup = kf.pose_group;
    this.forced = graph.forced;
    this.morphSeconds = Math.max("morph_seconds" in graph ? graph.morph_seconds : 0.2, 1e-3);
    this.transitions = Array.from({ length: this.n }, () => []);
    for (const [src, dst, prob] of graph.transitions) {
      if (src >= 0 && src < this.n && dst >= 0 && dst < this.n && prob > 0) this.transitions[src].push([dst, prob]);
    }
    this.rng = new Pcg32(seed, 0);
    this.onKeyframe = onKeyframe;
    this.onJump = onJump;
    this.time = 0;
    this.group = startGroup;
    if (start === null) {
      start = 0;
      if (startGroup !== null && this.poseGroup[0] !== startGroup && this.forced[0][startGroup] >= 0) start = this.forced[0][startGroup];
    }
    this.main = new Stream(start, this._natural(start));
    this.old = null;
    this.fade = 1;
    this.pendingGroup = null;
    this.pendingJump = null;
    this.jumps = 0;
  }

  _natural(k) { return k + 1 < this.n ? k + 1 : k; }

  _drawSuccessor(k) {
    const opts = this.transitions[k];
    if (!opts.length) return null;
    let total = 1;
    if (k + 1 >= this.n) {  // no natural successor: a transition is certain
      total = 0;
      for (const [, p] of opts) total += p;
    }
    const r = this.rng.random();
    let c = 0;
    for (const [dst, p] of opts) {
      c += p / total;
      if (r < c) return dst;
    }
    return null;
  }

  _jump(dst, kind) {
    const src = this.main.k;
    this.old = this.main;
    this.main = new Stream(dst, this._natural(dst));
    this.fade = 0;
    this.jumps++;
    this.onJump(kind, src, dst);
  }

  _advance(s, steps, main) {
    s.phase += steps;
    while (s.phase >= 1) {
      s.phase -= 1;
      const k = s.k;
      if (main && this.pendingJump === null) {
        const dst = this._drawSuccessor(k);
        if (dst !== null && this.old === null) {
          this._jump(dst, "transition");
          this.old.k = this.old.nxt;
          this.old.nxt = this._natural(this.old.nxt);
          this.old.phase = s.phase;
          this.main.phase = s.phase;
          return;
        }
        if (dst !== null) this.pendingJump = dst;  // a crossfade is running: never cut a fade
      }
      if (k + 1 >= this.n && main) {  // last keyframe with its jump waiting for a fade to end
        s.phase = Math.min(s.phase, 0.999);
        return;
      }
      s.k = s.nxt;
      s.nxt = this._natural(s.nxt);
      if (main) this.onKeyframe(s.k);
    }
  }

  /** Advance dt seconds with the viewpoint in pose group ``group``. */
  step(dt, group = null) {
    this.time += dt;
    if (group !== null && group !== this.group) {
      this.group = group;
      this.pendingGroup = group;
    }
    if (this.old !== null) {
      this.fade = Math.min(1, this.fade + dt / this.morphSeconds);
      this._advance(this.old, dt * this.fps, false);
      if (this.fade >= 1) this.old = null;
    }
    if (this.pendingJump !== null && this.old === null) {
      const dst = this.pendingJump;
      this.pendingJump = null;
      const phase = this.main.phase;
      this._jump(dst, "transition");
      this.main.phase = phase;
    }
    if (this.pendingGroup !== null && this.old === null) {
      const g = this.pendingGroup;
      this.pendingGroup = null;
      const row = this.forced[this.main.k];
      const dst = g < row.length ? row[g] : -1;
      if (dst >= 0 && this.poseGroup[this.main.k] !== g) {
        const phase = this.main.phase;
        this._jump(dst, "forced");
        this.main.phase = phase;
      }
    }
    this._advance(this.main, dt * this.fps, true);
  }

  /** What to draw: [[k, nxt, phase, weight]], the old stream first while crossfading. */
  streams() {
    const out = [];
    if (this.old !== null && this.fade < 1) out.push([this.old.k, this.old.nxt, this.old.phase, 1 - this.fade]);
    out.push([this.main.k, this.main.nxt, this.main.phase, out.length ? this.fade : 1]);
    return out;
  }

  chain(k) {
    const n1 = this._natural(k);
    return [k, n1, this._natural(n1)];
  }

  /** Keyframes worth decoding ahead (player/walker.py upcoming). */
  upcoming(groupAhead = null) {
    let ks = [];
    for (const s of this.old ? [this.main, this.old] : [this.main]) ks = ks.concat(this.chain(s.k));
    for (const k of [this.main.k, this.main.nxt]) for (const [d] of this.transitions[k]) ks = ks.concat(this.chain(d));
    if (this.pendingJump !== null) ks = ks.concat(this.chain(this.pendingJump));
    for (const g of [this.pendingGroup, groupAhead !== this.group ? groupAhead : null]) {
      if (g === null) continue;
      for (const k of [this.main.k, this.main.nxt]) {
        const t = g < this.forced[k].length ? this.forced[k][g] : -1;
        if (t >= 0) ks = ks.concat(this.chain(t));
      }
    }
    return [...new Set(ks)];
  }
}
