// Tiles decoded by the browser and packed as the Python player packs them (player/cache.py,
// player/kernels/decode.py): premultiplied colour clamped to alpha in RGBA bytes, and depth in
// metres (float32) at the tile's size. ``TileStore`` keeps a bounded set of them in the
// renderer's texture layers (least recently used goes first) and decodes ahead of need; a
// damaged tile is stood in by the nearest keyframe of its view that decodes, named once.
// Chained files (v1.3) are decoded as formats/reader.py does: from the nearest keyframe of the
// chain this view has decoded lately (or the chain's intra start) forward, difference by difference.

import { decodePng } from "./png.js";
import { DEPTH_STEP8, kindShape } from "./spec.js";

const LOSSY = ["jpeg", "webp"];  // colour in these takes the clamped difference rule (docs/p4d-format.md "Chains")
export const CHAIN_MEMO = 8;  // decoded keyframes kept per view of a chained file (P4DReader.CHAIN_MEMO)

const JPEG = [0xff, 0xd8, 0xff];

async function bitmapPixels(codec, data, h, w) {
  const riff = String.fromCharCode(...data.subarray(0, 4)) === "RIFF" && String.fromCharCode(...data.subarray(8, 12)) === "WEBP";
  if ((codec === "jpeg" && JPEG.some((b, i) => data[i] !== b)) || (codec === "webp" && !riff)) {
    throw new Error(`not a ${codec} stream`);
  }
  const bmp = await createImageBitmap(new Blob([data], { type: `image/${codec}` }),
    { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  try {
    if (bmp.width !== w || bmp.height !== h) throw new Error(`${codec} image is ${bmp.width}x${bmp.height}, the tile is ${w}x${h}`);
    const cv = new OffscreenCanvas(w, h);
    const ctx = cv.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bmp, 0, 0);
    return ctx.getImageData(0, 0, w, h).data;
  } finally {
    bmp.close();
  }
}

/** The samples one chunk holds, as stored: colour and normal RGB bytes, alpha bytes, depth 16-bit
 * q or (v1.1) 8-bit codes; for a predicted chunk (v1.3) the difference to keyframe k - 1. */
async function decodeStored(kind, codec, data, h, w, depthBits = 16) {
  if (codec === "raw+zstd") throw new Error("raw+zstd tiles are not read by browsers; write the site with `player web`, which re-codes them as png");
  if (kind === "depth" && depthBits === 16) return decodePng(data, { width: w, height: h, bits: 16, colorType: 0 });
  if (kind === "depth") {
    return codec === "png" ? decodePng(data, { width: w, height: h, bits: 8, colorType: 0 })
      : decodeStored("alpha", codec, data, h, w);
  }
  if (codec === "png") return decodePng(data, { width: w, height: h, bits: 8, colorType: kind === "color" || kind === "normal" ? 2 : 0 });
  const px = await bitmapPixels(codec, data, h, w);
  const ch = kind === "color" || kind === "normal" ? 3 : 1;
  const out = new Uint8Array(h * w * ch);
  for (let i = 0, n = h * w; i < n; i++) for (let c = 0; c < ch; c++) out[i * ch + c] = px[i * 4 + c];
  return out;
}

function sampleAxis(s, n) {
  const ns = Math.ceil(n / s);
  const pos = new Float32Array(ns);
  for (let i = 0; i < ns; i++) pos[i] = Math.min(i * s + (s >> 1), n - 1);
  const k0 = new Int32Array(n), k1 = new Int32Array(n), own = new Int32Array(n), t = new Float32Array(n);
  let j = 0;
  for (let x = 0; x < n; x++) {
    while (j < ns && pos[j] <= x) j++;  // searchsorted(pos, x, side="right")
    let b = Math.min(Math.max(j, 1), Math.max(ns - 1, 1));
    const a = Math.max(b - 1, 0);
    b = Math.min(b, ns - 1);
    k0[x] = a; k1[x] = b;
    t[x] = Math.min(Math.max((x - pos[a]) / Math.max(pos[b] - pos[a], 1), 0), 1);
    own[x] = Math.min(Math.floor(x / s), ns - 1);
  }
  return { k0, k1, t, own };
}

/** The stored sample with a surface nearest pixel (y, x) among the 3 x 3 around its own block's
 * (n, c); 0 when none has one, the first in row order on a tie. */
function nearestSurface(small, hs, ws, s, h, w, y, x, n, c) {
  let best = 0, bestD = Infinity;
  for (let r = Math.max(n - 1, 0); r < Math.min(n + 2, hs); r++) {
    for (let q = Math.max(c - 1, 0); q < Math.min(c + 2, ws); q++) {
      const z = small[r * ws + q];
      if (z > 0) {
        const dy = Math.min(r * s + (s >> 1), h - 1) - y, dx = Math.min(q * s + (s >> 1), w - 1) - x;
        const d = dy * dy + dx * dx;
        if (d < bestD) { bestD = d; best = z; }
      }
    }
  }
  return best;
}

/** Depth stored at 1/s to the tile's size (player/kernels/decode.py upsample_depth): bilinear
 * between the 4 samples around a pixel where they lie on one surface, else its block's sample.
 * With the tile's alpha (Uint8Array [h*w]), which draws the silhouette the coarse samples
 * cannot: 0 where alpha is 0, and where the own block's sample is empty the nearest sample with
 * a surface among the 3 x 3 blocks around. */
export function upsampleDepth(small, s, h, w, disc = 0.05, alpha = null) {
  if (s === 1) return small;
  const hs = Math.ceil(h / s), ws = Math.ceil(w / s);
  const ay = sampleAxis(s, h), ax = sampleAxis(s, w);
  const out = new Float32Array(h * w);
  const f = Math.fround, d = f(disc), one = f(1);
  for (let y = 0; y < h; y++) {
    const r0 = ay.k0[y] * ws, r1 = ay.k1[y] * ws, rn = ay.own[y] * ws, t = ay.t[y];
    for (let x = 0; x < w; x++) {
      if (alpha && alpha[y * w + x] === 0) continue;  // no surface where the lossless alpha has none
      const c0 = ax.k0[x], c1 = ax.k1[x], u = ax.t[x];
      const z00 = small[r0 + c0], z01 = small[r0 + c1], z10 = small[r1 + c0], z11 = small[r1 + c1];
      const zmin = Math.min(z00, z01, z10, z11), zmax = Math.max(z00, z01, z10, z11);
      if (zmin > 0 && f(zmax - zmin) <= f(d * zmin)) {
        const top = f(f(f(one - u) * z00) + f(u * z01)), bot = f(f(f(one - u) * z10) + f(u * z11));
        out[y * w + x] = f(f(f(one - t) * top) + f(t * bot));
      } else {
        const z = small[rn + ax.own[x]];
        out[y * w + x] = z === 0 && alpha ? nearestSurface(small, hs, ws, s, h, w, y, x, ay.own[y], ax.own[x]) : z;
      }
    }
  }
  return out;
}

/** One (keyframe, view)'s chunks -> {kind: its stored samples} (``decodeStored``). */
export async function decodeSamples(chunks, layout) {
  const out = {};
  for (const kind of Object.keys(chunks)) {
    const [h, w] = kindShape(layout, kind);
    out[kind] = await decodeStored(kind, chunks[kind].codec, chunks[kind].data, h, w, layout.depthBits ?? 16);
  }
  return out;
}

/** A predicted tile's samples from the previous keyframe's ``prev`` and its chunk's difference
 * ``r`` (formats/p4d.py apply_residual): lossy colour clamp(prev + r - 128, 0, 255), every other
 * coding prev + r modulo 2^bits (a typed array's store wraps). */
export function applyResidual(prev, r, lossy) {
  const out = new prev.constructor(prev.length);
  if (lossy) for (let i = 0; i < prev.length; i++) out[i] = Math.min(Math.max(prev[i] + r[i] - 128, 0), 255);
  else for (let i = 0; i < prev.length; i++) out[i] = prev[i] + r[i];
  return out;
}

/** One tile's chunks -> {rgba: Uint8Array [H*W*4], depth: Float32Array [H*W], normal: Uint8Array
 * [hn*wn*2] normal codes (v1.2) or null}; the chunks of an intra tile (chained files: ``packTile``
 * of the samples ``TileStore`` walked to). */
export async function decodeTile(chunks, meta, layout) {
  return packTile(await decodeSamples(chunks, layout), meta, layout);
}

/** Stored samples of one (keyframe, view) -> the tile as ``decodeTile`` gives it. */
export function packTile(samples, meta, layout) {
  const { H, W, depthScale: s } = layout;
  const n = H * W;
  const color = samples.color;
  const alpha = samples.alpha ?? null;
  const rgba = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    const a = alpha ? alpha[i] : 255;
    rgba[4 * i] = Math.min(color[3 * i], a);  // a lossy codec's overshoot above alpha (docs/p4d-format.md)
    rgba[4 * i + 1] = Math.min(color[3 * i + 1], a);
    rgba[4 * i + 2] = Math.min(color[3 * i + 2], a);
    rgba[4 * i + 3] = a;
  }
  let depth;
  if (samples.depth) {
    const [hs, ws] = [Math.ceil(H / s), Math.ceil(W / s)];
    let q = samples.depth;
    if ((layout.depthBits ?? 16) === 8) {  // 8-bit codes (v1.1): n -> q = 1 + (n - 1) * 258, 0 = empty
      q = new Uint16Array(samples.depth.length);
      for (let i = 0; i < q.length; i++) q[i] = samples.depth[i] ? 1 + (samples.depth[i] - 1) * DEPTH_STEP8 : 0;
    }
    const { near, far } = meta.grid.depth;
    const step = (far - near) / 65534;
    const small = new Float32Array(hs * ws);
    for (let i = 0; i < small.length; i++) small[i] = q[i] > 0 ? near + (q[i] - 1) * step : 0;
    depth = upsampleDepth(small, s, H, W, 0.05, alpha);
  } else {
    depth = new Float32Array(n).fill(meta.grid.radius);  // no depth baked: a plane through the orbit centre
  }
  let normal = null;
  if (samples.normal) {  // v1.2: the codes (u, v) of each normal sample; the third channel is 0
    const ns = layout.normalScale ?? 1, [hn, wn] = [Math.ceil(H / ns), Math.ceil(W / ns)];
    const px = samples.normal;
    normal = new Uint8Array(hn * wn * 2);
    for (let i = 0; i < hn * wn; i++) {
      normal[2 * i] = px[3 * i];
      normal[2 * i + 1] = px[3 * i + 1];
    }
  }
  return { rgba, depth, normal };
}

/** Decoded tiles in ``layers`` texture layers: upload(layer, tile) puts one there. */
export class TileStore {
  constructor(reader, layers, upload, onDamaged = () => {}) {
    this.reader = reader;
    this.layers = layers;
    this.upload = upload;
    this.onDamaged = onDamaged;
    this.resident = new Map();  // "k,v" -> layer, in use order (oldest first)
    this.pending = new Map();  // "k,v" -> promise of its layer
    this.damaged = new Map();  // "k,v" -> reason
    this.queue = [];
    this.busy = 0;
    this.pinned = new Set();
    this.decoded = 0;
    this.chunks = 0;  // chunks decoded (a chained tile costs those back to its chain's start)
    this.memo = new Map();  // chained files: view -> [{k, samples}], least recently used first
  }

  layer(k, v) {
    const key = `${k},${v}`;
    const l = this.resident.get(key);
    if (l !== undefined) {  // most recently used
      this.resident.delete(key);
      this.resident.set(key, l);
    }
    return l;
  }

  /** Whether every (k, v) in keys is resident; those that are not are asked for first.
   * keys stay pinned (never evicted) until the next call. */
  ready(keys) {
    this.pinned = new Set(keys.map(([k, v]) => `${k},${v}`));
    const missing = keys.filter(([k, v]) => this.layer(k, v) === undefined);
    if (missing.length) this.prefetch(missing, true);
    return missing.length === 0;
  }

  /** Decode these (k, v) ahead, most urgent first, instead of what an earlier call queued. */
  prefetch(keys, urgent = false) {
    const want = keys.map(([k, v]) => `${k},${v}`).filter((key) => !this.resident.has(key) && !this.pending.has(key));
    this.queue = urgent ? [...new Set([...want, ...this.queue])] : [...new Set(want)].slice(0, Math.max(1, this.layers - 8));
    this._pump();
  }

  _pump() {
    while (this.busy < 3 && this.queue.length) {
      const key = this.queue.shift();
      if (this.resident.has(key) || this.pending.has(key)) continue;
      this.busy++;
      const [k, v] = key.split(",").map(Number);
      const p = this._load(k, v).then((tile) => {
        const layer = this._free();
        this.upload(layer, tile);
        this.resident.set(key, layer);
        this.decoded++;
      }).finally(() => {
        this.pending.delete(key);
        this.busy--;
        this._pump();
      });
      p.catch(() => {});
      this.pending.set(key, p);
    }
  }

  _free() {
    if (this.resident.size < this.layers) {
      const used = new Set(this.resident.values());
      for (let l = 0; l < this.layers; l++) if (!used.has(l)) return l;
    }
    for (const [key, layer] of this.resident) {  // oldest first
      if (!this.pinned.has(key)) {
        this.resident.delete(key);
        return layer;
      }
    }
    throw new Error("tile cache too small for one frame");
  }

  async _decode(k, v) {
    const L = this.reader.layout;
    if ((L.chain ?? 1) > 1) return packTile(await this._chained(k, v), this.reader.meta, L);
    const chunks = await this.reader.tileChunks(k, v);
    this.chunks += L.kinds.length;
    return decodeTile(chunks, this.reader.meta, L);
  }

  /** Stored samples of (k, v) in a chained file: from the nearest keyframe of its chain this
   * view keeps decoded (the CHAIN_MEMO most recently used) or the chain's intra start, forward;
   * at most meta.tiles.chain keyframes' chunks. */
  async _chained(k, v) {
    const L = this.reader.layout, nk = L.kinds.length;
    const memo = this.memo.get(v) ?? [];
    const predicted = (j) => L.kinds.some((_, i) => this.reader.records[(j * L.V + v) * nk + i].flags & 1);
    let j = k, base = null;
    for (;;) {  // ends at the chain's start at the latest: the reader refuses predicted tiles there
      const hit = memo.find((e) => e.k === j);
      if (hit) { base = hit.samples; break; }
      if (!predicted(j)) break;
      j--;
    }
    for (let i = base ? j + 1 : j; i <= k; i++) {
      const chunks = await this.reader.tileChunks(i, v);
      const coded = await decodeSamples(chunks, L);
      this.chunks += nk;
      const next = {};
      for (const kind of L.kinds) {
        const c = chunks[kind];
        next[kind] = c.predicted ? applyResidual(base[kind], coded[kind], kind === "color" && LOSSY.includes(c.codec)) : coded[kind];
      }
      base = next;
    }
    const kept = (this.memo.get(v) ?? []).filter((e) => e.k !== k);
    this.memo.set(v, [...kept.slice(Math.max(kept.length - CHAIN_MEMO + 1, 0)), { k, samples: base }]);
    return base;
  }

  async _load(k, v) {
    const n = this.reader.layout.K;
    const order = [k];
    for (let d = 1; d < n; d++) for (const o of [k - d, k + d]) if (o >= 0 && o < n) order.push(o);
    for (const o of order) {
      const key = `${o},${v}`;
      if (this.damaged.has(key)) continue;
      try {
        return await this._decode(o, v);
      } catch (e) {
        this.damaged.set(key, e.message);
        this.onDamaged(o, v, e.message);
      }
    }
    const { H, W } = this.reader.layout;
    return { rgba: new Uint8Array(H * W * 4), depth: new Float32Array(H * W) };
  }
}
