// The hostile-input-safe .p4d reader of the page (formats/reader.py is its Python twin): the
// header, then the index and metadata in one read, then tiles on demand, each crc-checked
// before it is decoded. Everything a file declares is checked before it is used.

import { crc32 } from "./crc32.js";
import { unpackMeta } from "./msgpack.js";
import { decodePng } from "./png.js";
import { CODECS, FLAG_PREDICTED, HEADER_SIZE, checkHeader, checkIndex, kindShape } from "./spec.js";
import { validateMeta } from "./schema.js";

export class P4DReader {
  constructor(source) {
    this.source = source;
  }

  /** Reads and checks the header (the preview can be read then); throws one Error naming the problem. */
  async openHeader() {
    const size = this.source.size;
    if (size < HEADER_SIZE) throw new Error(`${size} bytes is shorter than the ${HEADER_SIZE}-byte header`);
    const head = await this.source.read(0, HEADER_SIZE);
    this.layout = checkHeader(head, size, crc32);
    return this;
  }

  /** Reads and checks index and metadata (after ``openHeader``). */
  async openIndex() {
    const L = this.layout, size = this.source.size;
    const [ioff, ilen] = L.index;
    const [, mlen] = L.meta;
    const tail = await this.source.read(ioff, ilen + mlen);
    const ibytes = tail.subarray(0, ilen);
    if (crc32(ibytes) !== L.indexCrc) throw new Error(`index crc mismatch (index at offset ${ioff}, header index_crc (offset 80))`);
    const recs = checkIndex(ibytes, L, size);
    const mbytes = tail.subarray(ilen);
    if (crc32(mbytes) !== L.metaCrc) throw new Error(`metadata crc mismatch (metadata at offset ${L.meta[0]}, header meta_crc (offset 76))`);
    let meta;
    try {
      meta = unpackMeta(mbytes);
    } catch (e) {
      throw new Error(`metadata: not valid msgpack within limits (${e.message})`);
    }
    try {
      validateMeta(meta, L);
    } catch (e) {
      throw new Error(`metadata invalid: ${e.message}`);
    }
    const depthBits = meta.tiles.depth_bits ?? 16;
    L.normalScale = meta.tiles.normal_scale ?? 1;
    recs.forEach((r, i) => {
      const kind = L.kinds[i % L.kinds.length];
      if (CODECS[r.codec - 1] !== meta.tiles.codecs[kind]) {
        throw new Error(`index record ${i} has codec ${r.codec}, meta.tiles.codecs.${kind} is ${meta.tiles.codecs[kind]}`);
      }
      if (kind === "normal") {
        const [kh, kw] = kindShape(L, "normal");
        if (r.raw !== kh * kw * 3) throw new Error(`index record ${i} raw length ${r.raw} != tile size ${kh * kw * 3} (normal tiles at meta.tiles.normal_scale ${L.normalScale})`);
      }
      if (kind === "depth") {
        const [kh, kw] = kindShape(L, "depth");
        const want = kh * kw * depthBits / 8;
        if (r.raw !== want) throw new Error(`index record ${i} raw length ${r.raw} != tile size ${want} (${depthBits}-bit depth, meta.tiles.depth_bits)`);
      }
    });
    // v1.3: keyframes k % chain == 0 start a chain, so a decode walks back at most chain chunks
    const chain = meta.tiles.chain ?? 1;
    recs.forEach((r, i) => {
      const k = Math.floor(i / (L.kinds.length * L.V));
      if (r.flags & FLAG_PREDICTED && k % chain === 0) {
        const v = Math.floor(i / L.kinds.length) % L.V, kind = L.kinds[i % L.kinds.length];
        const what = "chain" in meta.tiles ? `meta.tiles.chain = ${chain}` : "no meta.tiles.chain";
        throw new Error(`index record ${i} (tile ${k}, ${v}, ${kind}) is predicted, but keyframe ${k} starts a chain (${what}): its tiles must be intra`);
      }
    });
    L.chain = chain;
    L.depthBits = depthBits;
    this.records = recs;
    this.meta = meta;
    this.codecs = meta.tiles.codecs;
    return this;
  }

  /** The preview as {rgba: Uint8Array (premultiplied), w, h}, or null when the file has none. */
  async preview() {
    const p = this.layout.preview;
    if (!p) return null;
    const data = await this.source.read(p.offset, p.length);
    if (crc32(data) !== p.crc) throw new Error(`crc mismatch in preview at offset ${p.offset}`);
    const rgba = await decodePng(data, { width: p.w, height: p.h, bits: 8, colorType: 6 });
    return { rgba, w: p.w, h: p.h };
  }

  /** {kind: {codec, data, predicted}} of tile (k, v), every chunk's crc checked (predicted, v1.3:
   * the chunk holds the difference to keyframe k - 1). Its kinds' chunks are
   * read in one request where they lie together (the writer puts them side by side). */
  async tileChunks(k, v) {
    const L = this.layout;
    const nk = L.kinds.length;
    const recs = L.kinds.map((_, j) => this.records[(k * L.V + v) * nk + j]);
    const lo = Math.min(...recs.map((r) => r.offset));
    const hi = Math.max(...recs.map((r) => r.offset + r.length));
    const total = recs.reduce((s, r) => s + r.length, 0);
    const together = hi - lo <= total + nk * L.alignment;
    const span = together ? await this.source.read(lo, hi - lo) : null;
    const out = {};
    for (let j = 0; j < nk; j++) {
      const r = recs[j], kind = L.kinds[j];
      const data = span ? span.subarray(r.offset - lo, r.offset - lo + r.length) : await this.source.read(r.offset, r.length);
      if (crc32(data) !== r.crc) throw new Error(`crc mismatch in tile (keyframe ${k}, view ${v}, ${kind}) at offset ${r.offset}`);
      out[kind] = { codec: CODECS[r.codec - 1], data, predicted: (r.flags & FLAG_PREDICTED) !== 0 };
    }
    return out;
  }
}
