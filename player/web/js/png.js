// The PNGs a .p4d holds (8-bit grey alpha, 16-bit grey depth, 8-bit RGB / RGBA colour and
// preview), decoded here rather than by the browser: createImageBitmap gives 8 bits per channel
// and may colour-manage or premultiply, and the size is checked before any pixel is inflated.
// Inflate is the browser's (DecompressionStream "deflate" reads the zlib stream PNG stores).

import { crc32 } from "./crc32.js";

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const CHANNELS = { 0: 1, 2: 3, 4: 2, 6: 4 };

/** Width, height, bit depth, colour type and channel count from the IHDR of a PNG stream. */
export function pngInfo(data) {
  if (data.length < 33 || SIGNATURE.some((b, i) => data[i] !== b)) throw new Error("not a PNG stream (bad signature)");
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (String.fromCharCode(...data.subarray(12, 16)) !== "IHDR") throw new Error("PNG stream without IHDR first");
  return { width: v.getUint32(16), height: v.getUint32(20), bits: data[24], colorType: data[25],
           interlace: data[28], channels: CHANNELS[data[25]] };
}

async function inflate(parts, limit) {
  const ds = new DecompressionStream("deflate");
  const writer = ds.writable.getWriter();
  const done = (async () => {
    for (const p of parts) await writer.write(p);
    await writer.close();
  })();
  done.catch(() => {});
  const out = new Uint8Array(limit);
  let n = 0;
  const reader = ds.readable.getReader();
  for (;;) {
    const { value, done: end } = await reader.read();
    if (end) break;
    if (n + value.length > limit) {
      reader.cancel().catch(() => {});
      throw new Error("PNG data inflates past its declared size");
    }
    out.set(value, n);
    n += value.length;
  }
  await done;
  if (n !== limit) throw new Error(`PNG data inflates to ${n} bytes, its size needs ${limit}`);
  return out;
}

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Decoded samples of a PNG whose size, bit depth and colour type the caller expects:
 * Uint8Array (8-bit) or Uint16Array (16-bit), h * w * channels samples in row order. */
export async function decodePng(data, want) {
  const info = pngInfo(data);
  if (info.width !== want.width || info.height !== want.height || info.bits !== want.bits ||
      info.colorType !== want.colorType) {
    throw new Error(`PNG is ${info.width}x${info.height} ${info.bits}-bit type ${info.colorType}, ` +
                    `the tile needs ${want.width}x${want.height} ${want.bits}-bit type ${want.colorType}`);
  }
  if (info.interlace !== 0) throw new Error("interlaced PNG tiles are not allowed");
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const parts = [];
  let pos = 8;
  for (;;) {
    if (pos + 12 > data.length) throw new Error("PNG stream ends without IEND");
    const len = v.getUint32(pos);
    const type = String.fromCharCode(...data.subarray(pos + 4, pos + 8));
    if (pos + 12 + len > data.length) throw new Error(`PNG chunk ${type} runs past the stream`);
    if (crc32(data, pos + 4, pos + 8 + len) !== v.getUint32(pos + 8 + len)) throw new Error(`PNG chunk ${type} crc mismatch`);
    if (type === "IDAT") parts.push(data.subarray(pos + 8, pos + 8 + len));
    pos += 12 + len;
    if (type === "IEND") break;
  }
  const bpp = info.channels * (info.bits / 8);
  const stride = info.width * bpp;
  const raw = await inflate(parts, info.height * (stride + 1));
  const px = new Uint8Array(info.height * stride);
  for (let y = 0; y < info.height; y++) {
    const f = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const up = row - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? px[row + x - bpp] : 0;
      const b = y > 0 ? px[up + x] : 0;
      const c = x >= bpp && y > 0 ? px[up + x - bpp] : 0;
      const r = raw[src + x];
      let o;
      switch (f) {
        case 0: o = r; break;
        case 1: o = r + a; break;
        case 2: o = r + b; break;
        case 3: o = r + ((a + b) >> 1); break;
        case 4: o = r + paeth(a, b, c); break;
        default: throw new Error(`PNG row ${y} has unknown filter ${f}`);
      }
      px[row + x] = o & 0xff;
    }
  }
  if (info.bits === 8) return px;
  const out = new Uint16Array(info.width * info.height * info.channels);
  for (let i = 0; i < out.length; i++) out[i] = (px[2 * i] << 8) | px[2 * i + 1];  // PNG is big-endian
  return out;
}
