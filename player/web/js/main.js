// The page's entry: reads the URL parameters (README: the page's contract), opens the portrait
// (header, preview, index and metadata, then tiles on demand), and plays it. ``window.p4d``
// answers outside checks: trace() the keyframes shown so far, stats() the frame times.

import { HttpSource, MemorySource } from "./source.js";
import { P4DReader } from "./reader.js";
import { Renderer } from "./renderer.js";
import { TileStore } from "./tiles.js";
import { Playback } from "./playback.js";
import { Relighter } from "./lighting.js";
import { bindInput, hidePreview, layout, setState, showError, showNotice, showPreview, showProgress } from "./ui.js";

const DT = 1 / 60;  // the clock steps the walk in fixed ticks, so its draws do not depend on the frame rate
const BACKGROUND = [0.08, 0.08, 0.09];  // player/render.py RenderConfig.background
const TILE_BUDGET = 96 << 20;  // bytes of decoded tiles kept on the GPU (RGBA8 + float32 depth each)

function params() {
  const q = new URLSearchParams(location.search);
  const number = (name, lo, hi, integer) => {
    if (!q.has(name)) return null;
    const x = Number(q.get(name));
    if (!Number.isFinite(x) || x < lo || x > hi || (integer && !Number.isInteger(x))) {
      throw new Error(`URL parameter ${name}=${q.get(name)} must be ${integer ? "an integer" : "a number"} in ${lo}..${hi}`);
    }
    return x;
  };
  const yaw = number("yaw", -180, 180, false), pitch = number("pitch", -89, 89, false);
  let light = null;  // light=YAW,PITCH[,STRENGTH] or off, as `player --light`
  if (q.has("light") && q.get("light") !== "off") {
    const v = q.get("light").split(",").map(Number);
    if (!(v.length === 2 || v.length === 3) || v.some((x) => !Number.isFinite(x)) || Math.abs(v[1]) > 90 || (v.length === 3 && !(v[2] >= 0 && v[2] <= 4))) {
      throw new Error(`URL parameter light=${q.get("light")} must be YAW,PITCH[,STRENGTH] in degrees (pitch in -90..90, strength 0..4) or off`);
    }
    light = { yaw: v[0], pitch: v[1], strength: v[2] ?? null };
  }
  return { file: q.get("file"), k: number("k", 0, 65535, true), yaw, pitch, paused: q.get("paused") === "1",
           seed: number("seed", 0, Number.MAX_SAFE_INTEGER, true) ?? 0, size: number("size", 8, 4096, true),
           mode: q.get("mode") ?? (yaw !== null || pitch !== null ? "fixed" : "free"), sync: q.get("sync") === "1", light };
}

function embedded() {
  const node = document.getElementById("p4d-data");
  if (!node) return null;
  const bin = atob(node.textContent.trim());
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

async function boot() {
  const config = JSON.parse(document.getElementById("p4d-config").textContent);
  const p = params();
  const canvas = document.getElementById("p4d");
  const trace = [], frameMs = [], drawMs = [], damaged = [];
  const api = { trace: () => trace.map((e) => ({ ...e })), stats: () => ({ frame_ms: [...frameMs], draw_ms: [...drawMs] }),
                damaged: () => [...damaged], state: () => null };
  window.p4d = api;
  const bytes = p.file ? null : embedded();
  const source = bytes ? new MemorySource(bytes) : await new HttpSource(p.file || config.file, showProgress).open();
  const reader = new P4DReader(source);
  await reader.openHeader();
  const L = reader.layout;
  const size = p.size ?? Math.max(L.H, L.W);
  const preview = await reader.preview();
  const s = size / Math.max(L.H, L.W);
  layout(canvas, Math.max(1, Math.round(L.W * s)), Math.max(1, Math.round(L.H * s)));
  if (preview) showPreview(preview, BACKGROUND);
  await reader.openIndex();
  const meta = reader.meta;
  if (p.k !== null && p.k >= L.K) throw new Error(`URL parameter k=${p.k}: the portrait has ${L.K} keyframes (0..${L.K - 1})`);
  const renderer = new Renderer(canvas, meta, { size, background: BACKGROUND,
                                                layers: Math.max(24, Math.floor(TILE_BUDGET / (L.H * L.W * 8))) });  // a crossfade frame pins 16
  layout(canvas, renderer.wo, renderer.ho);
  const store = new TileStore(reader, renderer.layers, (layer, tile) => renderer.upload(layer, tile), (k, v, why) => {
    damaged.push({ k, v, reason: why });
    showNotice(`Tile keyframe ${k} view ${v} is damaged (${why}); drawing its nearest keyframe instead.`);
  });
  const pb = new Playback(meta, {
    mode: p.mode, seed: p.seed, yaw: p.yaw ?? 0, pitch: p.pitch ?? 0, keyframe: p.k, paused: p.paused,
    onKeyframe: (k) => trace.push({ t: pb.walker.time, k, kind: "keyframe" }),
    onJump: (kind, src, k) => trace.push({ t: pb.walker.time, k, kind }),
  });
  trace.push({ t: 0, k: pb.walker.main.k, kind: "start" });
  api.state = () => {
    const [yaw, pitch] = pb.view();
    return { yaw, pitch, zoom: pb.zoom, mode: pb.mode, paused: pb.paused, time: pb.walker.time, k: pb.walker.main.k,
             streams: pb.walker.streams(), tiles_decoded: store.decoded, source: source.mode };
  };
  // The light (format 1.2): a file without normals plays in its captured light, and says so once.
  const relighter = meta.tiles.kinds.includes("normal") ? new Relighter(meta.lighting) : null;
  const noLight = "This portrait has no normals (format 1.2), so it plays in its captured light.";
  let light = null, saidNoLight = false;
  const setLight = (l) => {
    if (!relighter) {
      if (l && !saidNoLight) showNotice(noLight);
      saidNoLight = saidNoLight || Boolean(l);
      return false;
    }
    light = l ? { yaw: l.yaw, pitch: Math.min(Math.max(l.pitch, -90), 90), strength: l.strength ?? null } : null;
    renderer.setLight(light ? relighter.table(light.yaw, light.pitch, light.strength) : null);
    return true;
  };
  setLight(p.light);
  api.light = () => (light ? { ...light } : null);
  api.setLight = (yaw, pitch, strength = null) => setLight(yaw === null ? null : { yaw, pitch, strength });
  const idle = bindInput(canvas, pb, (dx, dy) => {
    const base = light ?? (relighter ? { yaw: relighter.key.yaw, pitch: relighter.key.pitch, strength: null } : null);
    setLight(base && { yaw: ((base.yaw + 0.5 * dx + 540) % 360) - 180, pitch: base.pitch + 0.5 * dy, strength: base.strength });
  });
  const viewsAt = (yaw, pitch) => {
    const { idx, w } = renderer.views(yaw, pitch);
    return [...new Set(idx.filter((_, j) => w[j] > 0))];
  };
  let last = null, lastFrame = null, acc = 0;
  const frame = (now) => {
    try {
      idle();
      const [yaw, pitch] = pb.view();
      const streams = pb.walker.streams();
      if (!store.ready(renderer.needs(yaw, pitch, streams))) {
        last = null;  // waiting for tiles holds the clock: no keyframe is skipped
        requestAnimationFrame(frame);
        return;
      }
      const t0 = performance.now();
      renderer.draw(yaw, pitch, pb.zoom, streams, (k, v) => store.layer(k, v));
      if (p.sync) renderer.sync();
      drawMs.push(performance.now() - t0);
      if (lastFrame !== null) frameMs.push(now - lastFrame);
      lastFrame = now;
      if (document.body.dataset.state !== "ready") {
        hidePreview();
        setState("ready");
      }
      if (last !== null) acc += Math.min((now - last) / 1000, 0.25);
      last = now;
      for (; acc >= DT; acc -= DT) pb.step(DT);
      store.prefetch(pb.upcoming(viewsAt));
      requestAnimationFrame(frame);
    } catch (e) {
      showError(e.message);
    }
  };
  requestAnimationFrame(frame);
}

setState("loading");
boot().catch((e) => showError(e.message));
