// The .p4d container v1.x as docs/p4d-format.md specifies it (formats/p4d.py is the same spec
// in Python): the header's fields, the index records, and every check the Python reader makes
// on them. Each failure throws one Error that names what and where.

export const MAGIC = [0x89, 0x50, 0x34, 0x44, 0x0d, 0x0a, 0x1a, 0x0a];
export const MAJOR = 1;
export const HEADER_SIZE = 128;
export const KINDS = ["color", "alpha", "depth", "normal"];
// Wire ids (index record kind; kind_mask bit): 3 is the preview's, so normal (v1.2) is 4.
export const KIND_ID = { color: 0, alpha: 1, depth: 2, normal: 4 };
const KNOWN_KIND_BITS = 0b10111;
export const CODECS = ["raw+zstd", "png", "jpeg", "webp"];  // wire ids 1..4
export const KIND_CODECS = { color: ["jpeg", "webp", "png", "raw+zstd"], alpha: ["png", "raw+zstd", "webp"],
                             depth: ["png", "raw+zstd", "webp"],  // webp: 8-bit depth only (v1.1)
                             normal: ["webp", "png", "raw+zstd"] };  // v1.2, lossless
export const FLAG_PREDICTED = 1;  // index record flags bit 0 (v1.3): a difference to keyframe k - 1
export const MAX_CHAIN = 64;  // meta.tiles.chain cap: a decode walks back at most that many chunks
export const DEPTH_STEP8 = 258;  // q units per 8-bit depth code (v1.1): q = 1 + (n - 1) * 258
const KIND_BYTES = { color: 3, alpha: 1, depth: 2, normal: 3 };  // channels x bytes per sample
const MAX_SIDE = 8192, MAX_PREVIEW_SIDE = 2048, MAX_AXIS = 1 << 16, MAX_TILES = 1 << 21;
const MAX_CHUNK = 1 << 28, MAX_META = 16 << 20, MAX_ALIGNMENT = 1 << 16;
export const RECORD = 24;

// name, type, offset: the header table (formats/p4d.py HEADER_FIELDS).
const FIELDS = [["major", "u16", 8], ["minor", "u16", 10], ["header_size", "u32", 12], ["alignment", "u32", 16],
  ["kind_mask", "u32", 20], ["n_keyframes", "u32", 24], ["n_views", "u32", 28], ["tile_h", "u32", 32],
  ["tile_w", "u32", 36], ["file_size", "u64", 40], ["index_offset", "u64", 48], ["index_length", "u64", 56],
  ["meta_offset", "u64", 64], ["meta_length", "u32", 72], ["meta_crc", "u32", 76], ["index_crc", "u32", 80],
  ["depth_scale_log2", "u32", 84], ["preview_offset", "u64", 88], ["preview_length", "u32", 96],
  ["preview_raw", "u32", 100], ["preview_crc", "u32", 104], ["preview_codec", "u8", 108], ["preview_kind", "u8", 109],
  ["preview_reserved", "u16", 110], ["preview_h", "u32", 112], ["preview_w", "u32", 116], ["reserved", "u32", 120],
  ["header_crc", "u32", 124]];
const OFFSET = Object.fromEntries(FIELDS.map(([n, , o]) => [n, o]));
const at = (name) => `header ${name} (offset ${OFFSET[name]})`;

export const alignUp = (n, a) => Math.ceil(n / a) * a;

/** The 128 header bytes -> its fields by name (u64 as Number: any value past 2^53 fails the
 * size checks anyway). */
export function unpackHeader(bytes) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  const h = {};
  for (const [name, type, off] of FIELDS) {
    h[name] = type === "u8" ? v.getUint8(off) : type === "u16" ? v.getUint16(off, true)
      : type === "u32" ? v.getUint32(off, true) : Number(v.getBigUint64(off, true));
  }
  return h;
}

/** Checks the header against the file size, as formats/reader.py does; returns the file's
 * layout: {K, V, H, W, kinds, alignment, depthScale, index: [off, len], meta: [off, len], preview}. */
export function checkHeader(bytes, size, crc32) {
  if (size < HEADER_SIZE) throw new Error(`${size} bytes is shorter than the ${HEADER_SIZE}-byte header`);
  if (MAGIC.some((b, i) => bytes[i] !== b)) throw new Error("not a .p4d file (bad magic)");
  const h = unpackHeader(bytes);
  if (h.major !== MAJOR) throw new Error(`format version ${h.major}.${h.minor} is not supported (this reader reads ${MAJOR}.x)`);
  const crc = crc32(bytes, 0, 124);
  if (crc !== h.header_crc) throw new Error(`header crc mismatch: ${at("header_crc")} (header corrupt)`);
  if (h.header_size !== HEADER_SIZE) throw new Error(`${at("header_size")} = ${h.header_size}, expected ${HEADER_SIZE}`);
  const a = h.alignment;
  if (!(a >= 8 && a <= MAX_ALIGNMENT && (a & (a - 1)) === 0)) throw new Error(`${at("alignment")} = ${a} is not a power of two in [8, ${MAX_ALIGNMENT}]`);
  const kinds = KINDS.filter((k) => (h.kind_mask >> KIND_ID[k]) & 1);
  if (h.kind_mask & ~KNOWN_KIND_BITS || !kinds.includes("color")) throw new Error(`${at("kind_mask")} = ${h.kind_mask} is invalid (needs color; bits 0-2 and 4 only)`);
  for (const name of ["n_keyframes", "n_views"]) {
    if (!(h[name] >= 1 && h[name] <= MAX_AXIS)) throw new Error(`${at(name)} = ${h[name]} is outside 1..${MAX_AXIS}`);
  }
  const n = h.n_keyframes * h.n_views * kinds.length;
  if (n > MAX_TILES) throw new Error(`${n} tiles exceeds the cap ${MAX_TILES}`);
  for (const name of ["tile_h", "tile_w"]) {
    if (!(h[name] >= 1 && h[name] <= MAX_SIDE)) throw new Error(`${at(name)} = ${h[name]} is outside 1..${MAX_SIDE}`);
  }
  if (h.file_size !== size) {
    throw new Error(`${at("file_size")} = ${h.file_size}, the file has ${size} bytes (${size < h.file_size ? "truncated" : "trailing bytes"})`);
  }
  for (const name of ["preview_reserved", "reserved"]) if (h[name]) throw new Error(`${at(name)} = ${h[name]}, reserved fields must be zero`);
  if (h.depth_scale_log2 > 3 || (h.depth_scale_log2 && !kinds.includes("depth"))) throw new Error(`${at("depth_scale_log2")} = ${h.depth_scale_log2} is invalid`);
  if (h.index_length !== n * RECORD) throw new Error(`${at("index_length")} = ${h.index_length}, expected ${n} records x ${RECORD}`);
  if (!(h.meta_length > 0 && h.meta_length <= MAX_META)) throw new Error(`${at("meta_length")} = ${h.meta_length} is outside 1..${MAX_META}`);
  if (h.index_offset % a || h.index_offset < HEADER_SIZE) throw new Error(`${at("index_offset")} = ${h.index_offset} is out of place`);
  if (h.meta_offset !== h.index_offset + h.index_length) throw new Error(`${at("meta_offset")} = ${h.meta_offset} is out of place: the metadata starts right after the index`);
  if (h.meta_offset + h.meta_length !== size) throw new Error(`${at("meta_offset")} + meta_length is out of place: the metadata ends the file`);
  let preview = null;
  if (h.preview_kind === 0) {
    for (const name of ["preview_offset", "preview_length", "preview_raw", "preview_crc", "preview_codec", "preview_h", "preview_w"]) {
      if (h[name]) throw new Error(`${at(name)} = ${h[name]} is set without a preview (preview_kind 0)`);
    }
  } else {
    if (h.preview_kind !== 3 || h.preview_codec !== 2) throw new Error(`${at("preview_kind")} = ${h.preview_kind} with preview_codec ${h.preview_codec}, expected kind 3 with codec 2 (png)`);
    for (const name of ["preview_h", "preview_w"]) {
      if (!(h[name] >= 1 && h[name] <= MAX_PREVIEW_SIDE)) throw new Error(`${at(name)} = ${h[name]} is outside 1..${MAX_PREVIEW_SIDE}`);
    }
    if (h.preview_raw !== h.preview_h * h.preview_w * 4) throw new Error(`${at("preview_raw")} = ${h.preview_raw} does not fit the preview size`);
    preview = { offset: h.preview_offset, length: h.preview_length, crc: h.preview_crc, h: h.preview_h, w: h.preview_w };
  }
  const depthScale = 1 << h.depth_scale_log2;
  return { K: h.n_keyframes, V: h.n_views, H: h.tile_h, W: h.tile_w, kinds, alignment: a, depthScale,
           index: [h.index_offset, h.index_length], meta: [h.meta_offset, h.meta_length],
           indexCrc: h.index_crc, metaCrc: h.meta_crc, preview, minor: h.minor };
}

/** (h, w) of the stored tiles of a kind: depth at 1/depthScale, normals at 1/normalScale (the
 * metadata's, v1.2), rounded up. */
export function kindShape(layout, kind) {
  const s = kind === "depth" ? layout.depthScale : kind === "normal" ? (layout.normalScale ?? 1) : 1;
  return [Math.ceil(layout.H / s), Math.ceil(layout.W / s)];
}

/** The index bytes -> records [{offset, length, raw, crc, codec, kind, flags}] in canonical order,
 * checked as formats/reader.py ``_check_index`` does (kinds in order, known codecs, raw lengths,
 * chunks non-empty, aligned, contiguous, in bounds, the preview first, the index right after). */
export function checkIndex(bytes, layout, size) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nk = layout.kinds.length;
  const recs = [];
  for (let i = 0; i < bytes.length / RECORD; i++) {
    const o = i * RECORD;
    const r = { offset: Number(v.getBigUint64(o, true)), length: v.getUint32(o + 8, true), raw: v.getUint32(o + 12, true),
                crc: v.getUint32(o + 16, true), codec: v.getUint8(o + 20), kind: v.getUint8(o + 21), flags: v.getUint16(o + 22, true) };
    const kind = layout.kinds[i % nk];
    if (r.kind !== KIND_ID[kind]) throw new Error(`index record ${i} has kind ${r.kind}, canonical order expects ${KIND_ID[kind]} (${kind})`);
    const allowed = layout.minor >= 3 ? FLAG_PREDICTED : 0;  // flag bits are v1.3; reserved = 0 before
    if (r.flags & ~allowed) {
      const why = allowed ? "flag bits other than bit 0 (predicted)" : `flags are format 1.3, the header says 1.${layout.minor}`;
      throw new Error(`index record ${i} has non-zero reserved bytes (${r.flags}: ${why})`);
    }
    if (r.codec < 1 || r.codec > CODECS.length) throw new Error(`index record ${i} has unknown codec id ${r.codec}`);
    const [kh, kw] = kindShape(layout, kind);
    // 8-bit depth (v1.1) is half the 16-bit size; the metadata says which (reader.js checks it)
    const eight = kind === "depth" && r.raw * 2 === kh * kw * KIND_BYTES[kind];
    // normal tiles' size follows meta.tiles.normal_scale (v1.2): reader.js checks it with the metadata
    if (kind !== "normal" && r.raw !== kh * kw * KIND_BYTES[kind] && !eight) throw new Error(`index record ${i} raw length ${r.raw} != tile size ${kh * kw * KIND_BYTES[kind]}`);
    if (r.length < 1 || r.length > MAX_CHUNK) throw new Error(`index record ${i} length ${r.length} is outside 1..${MAX_CHUNK}`);
    if (r.offset > size) throw new Error(`index record ${i} offset ${r.offset} is past the end of the file`);
    recs.push(r);
  }
  const chunks = recs.map((r, i) => [r.offset, r.length, `index record ${i}`]);
  if (layout.preview) {
    const p = layout.preview;
    if (p.length < 1 || p.length > MAX_CHUNK) throw new Error(`the preview length ${p.length} is outside 1..${MAX_CHUNK}`);
    if (p.offset > size) throw new Error("the preview offset is past the end of the file");
    chunks.unshift([p.offset, p.length, "the preview"]);
  }
  const sorted = chunks.map((c, i) => [c, i]).sort((x, y) => x[0][0] - y[0][0] || x[1] - y[1]);
  let expect = alignUp(HEADER_SIZE, layout.alignment);
  for (const [[off, len, name]] of sorted) {
    if (off !== expect) throw new Error(`${name} at offset ${off} is out of place: chunks must be aligned to ${layout.alignment}, contiguous and non-overlapping (expected offset ${expect})`);
    expect = alignUp(off + len, layout.alignment);
  }
  if (layout.preview && sorted[0][1] !== 0) throw new Error("the preview must be the first chunk after the header");
  if (expect !== layout.index[0]) throw new Error(`the last chunk ends before ${expect}, but the index is at ${layout.index[0]}`);
  return recs;
}
