// The .p4d metadata schema (formats/p4d.py validate_meta): every field the player reads is
// checked, with the dotted path of the first one that is missing or wrong.

import { KINDS, KIND_CODECS, MAX_CHAIN } from "./spec.js";

function get(meta, path) {
  let node = meta;
  for (const part of path.split(".")) {
    if (node === null || typeof node !== "object" || Array.isArray(node) || !(part in node)) throw new Error(`meta.${path} is missing`);
    node = node[part];
  }
  return node;
}
const isNum = (x) => typeof x === "number" && Number.isFinite(x);
function num(v, path) {
  if (!isNum(v)) throw new Error(`meta.${path} must be a finite number`);
  return v;
}
function int(v, path) {
  if (!Number.isInteger(v)) throw new Error(`meta.${path} must be an integer`);
  return v;
}
function list(v, path, n) {
  if (!Array.isArray(v)) throw new Error(`meta.${path} must be a list`);
  if (n !== undefined && v.length !== n) throw new Error(`meta.${path} must have ${n} entries, has ${v.length}`);
  return v;
}
const nums = (v, path, n) => list(v, path, n).map((x, i) => num(x, `${path}[${i}]`));
function ints(v, path, lo, hi, n) {
  return list(v, path, n).map((x, i) => {
    int(x, `${path}[${i}]`);
    if (x < lo || x > hi) throw new Error(`meta.${path}[${i}] = ${x} is outside [${lo}, ${hi}]`);
    return x;
  });
}
function str(v, path) {
  if (typeof v !== "string") throw new Error(`meta.${path} must be a string`);
  return v;
}

/** Throws unless meta fits the schema and the header's layout (counts, tile size, kinds,
 * depth scale, codecs); returns meta. */
export function validateMeta(meta, layout) {
  str(get(meta, "generator"), "generator");
  const yaws = nums(get(meta, "grid.yaws"), "grid.yaws");
  const pitches = nums(get(meta, "grid.pitches"), "grid.pitches");
  for (const [name, axis] of [["yaws", yaws], ["pitches", pitches]]) {
    if (!axis.length) throw new Error(`meta.grid.${name} is empty`);
    for (let i = 1; i < axis.length; i++) if (!(axis[i] > axis[i - 1])) throw new Error(`meta.grid.${name} must be strictly ascending`);
  }
  if (!(num(get(meta, "grid.radius"), "grid.radius") > 0)) throw new Error("meta.grid.radius must be > 0");
  nums(get(meta, "grid.center"), "grid.center", 3);
  for (const k of ["fx", "fy", "cx", "cy"]) num(get(meta, `grid.intrinsics.${k}`), `grid.intrinsics.${k}`);
  const iw = int(get(meta, "grid.intrinsics.width"), "grid.intrinsics.width");
  const ih = int(get(meta, "grid.intrinsics.height"), "grid.intrinsics.height");
  if (iw !== layout.W || ih !== layout.H) throw new Error(`meta.grid.intrinsics is ${iw}x${ih} but tiles are ${layout.W}x${layout.H}`);
  const near = num(get(meta, "grid.depth.near"), "grid.depth.near");
  const far = num(get(meta, "grid.depth.far"), "grid.depth.far");
  if (!(near > 0 && near < far)) throw new Error("meta.grid.depth needs 0 < near < far");
  const kinds = list(get(meta, "tiles.kinds"), "tiles.kinds");
  if (kinds.join() !== layout.kinds.join() || kinds.some((k) => !KINDS.includes(k))) {
    throw new Error(`meta.tiles.kinds ${JSON.stringify(kinds)} != header kinds ${JSON.stringify(layout.kinds)}`);
  }
  const codecs = get(meta, "tiles.codecs");
  for (const k of kinds) {
    if (!KIND_CODECS[k].includes(codecs[k])) throw new Error(`meta.tiles.codecs.${k} must be one of ${KIND_CODECS[k].join(", ")}`);
  }
  const ds = "depth_scale" in meta.tiles ? int(meta.tiles.depth_scale, "tiles.depth_scale") : 1;
  if (ds !== layout.depthScale) throw new Error(`meta.tiles.depth_scale is ${ds} but the header says ${layout.depthScale}`);
  const bits = "depth_bits" in meta.tiles ? int(meta.tiles.depth_bits, "tiles.depth_bits") : 16;
  if (bits !== 16 && bits !== 8) throw new Error(`meta.tiles.depth_bits must be 16 or 8, got ${bits}`);
  if (bits !== 16 && !kinds.includes("depth")) throw new Error(`meta.tiles.depth_bits is ${bits} but the file has no depth tiles`);
  if (bits !== 16 && layout.minor < 1) throw new Error(`meta.tiles.depth_bits ${bits} is format 1.1, the header says 1.${layout.minor}`);
  if (bits === 16 && codecs.depth === "webp") throw new Error("meta.tiles.codecs.depth is webp, which stores 8-bit depth only (tiles.depth_bits 8)");
  if ("chain" in meta.tiles) {  // v1.3: chained tiles
    const ch = int(meta.tiles.chain, "tiles.chain");
    if (!(ch >= 2 && ch <= MAX_CHAIN)) throw new Error(`meta.tiles.chain must be in 2..${MAX_CHAIN}, got ${ch}`);
    if (layout.minor < 3) throw new Error(`meta.tiles.chain is format 1.3, the header says 1.${layout.minor}`);
  }
  validateLighting(meta, kinds, layout);
  if (!(num(get(meta, "keyframes.fps"), "keyframes.fps") > 0)) throw new Error("meta.keyframes.fps must be > 0");
  const K = nums(get(meta, "keyframes.times"), "keyframes.times").length;
  if (K !== layout.K) throw new Error(`meta has ${K} keyframes but the header says ${layout.K}`);
  if (yaws.length * pitches.length !== layout.V) throw new Error(`meta grid has ${yaws.length * pitches.length} views but the header says ${layout.V}`);
  list(get(meta, "keyframes.capture_view"), "keyframes.capture_view", K).forEach((r, i) => nums(r, `keyframes.capture_view[${i}]`, 2));
  const G = int(get(meta, "graph.groups.count"), "graph.groups.count");
  if (G < 1 || G > 4096) throw new Error("meta.graph.groups.count must be in [1, 4096]");
  ints(get(meta, "keyframes.pose_group"), "keyframes.pose_group", 0, G - 1, K);
  list(get(meta, "graph.groups.centers"), "graph.groups.centers", G).forEach((r, i) => nums(r, `graph.groups.centers[${i}]`, 2));
  const hasOut = new Array(K).fill(false);
  list(get(meta, "graph.transitions"), "graph.transitions").forEach((t, i) => {
    list(t, `graph.transitions[${i}]`, 4);
    const [src, dst] = [int(t[0], `graph.transitions[${i}][0]`), int(t[1], `graph.transitions[${i}][1]`)];
    const p = num(t[2], `graph.transitions[${i}][2]`);
    num(t[3], `graph.transitions[${i}][3]`);
    if (!(src >= 0 && src < K && dst >= 0 && dst < K)) throw new Error(`meta.graph.transitions[${i}] names a keyframe outside [0, ${K})`);
    if (!(p >= 0 && p <= 1)) throw new Error(`meta.graph.transitions[${i}] probability ${p} is outside [0, 1]`);
    hasOut[src] = true;
  });
  if (!hasOut[K - 1]) throw new Error(`meta.graph has no transition out of the last keyframe ${K - 1} (a dead end)`);
  list(get(meta, "graph.forced"), "graph.forced", K).forEach((r, i) => ints(r, `graph.forced[${i}]`, -1, K - 1, G));
  if (!(num(get(meta, "graph.morph_seconds"), "graph.morph_seconds") >= 0)) throw new Error("meta.graph.morph_seconds must be >= 0");
  const ps = num(get(meta, "graph.pose_switch_prob"), "graph.pose_switch_prob");
  if (!(ps >= 0 && ps <= 1)) throw new Error("meta.graph.pose_switch_prob must be in [0, 1]");
  return meta;
}

/** v1.2: normal tiles, tiles.normal_scale and lighting come together or not at all (formats/p4d.py). */
function validateLighting(meta, kinds, layout) {
  const has = kinds.includes("normal");
  const ns = "normal_scale" in meta.tiles ? int(meta.tiles.normal_scale, "tiles.normal_scale") : null;
  if (ns !== null && ![1, 2, 4, 8].includes(ns)) throw new Error(`meta.tiles.normal_scale must be one of 1, 2, 4, 8, got ${ns}`);
  if ((ns !== null || "lighting" in meta) && !has) throw new Error("meta.tiles.normal_scale / meta.lighting are set but the file has no normal tiles");
  if (!has) return;
  if (layout.minor < 2) throw new Error(`normal tiles are format 1.2, the header says 1.${layout.minor}`);
  if (ns === null) throw new Error("meta.tiles.normal_scale is missing (a file with normal tiles must state it)");
  const sh = nums(get(meta, "lighting.sh"), "lighting.sh", 9);
  if (!(sh[0] > 0)) throw new Error(`meta.lighting.sh[0] (the mean light) must be > 0, got ${sh[0]}`);
  const key = nums(get(meta, "lighting.key"), "lighting.key", 4);
  if (!(key[0] >= -180 && key[0] <= 180 && key[1] >= -90 && key[1] <= 90 && key[2] >= 0 && key[3] >= 0 && key[3] <= 1)) {
    throw new Error("meta.lighting.key must be [yaw in -180..180, pitch in -90..90, amount >= 0, wrap in 0..1]");
  }
}
