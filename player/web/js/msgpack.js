// The .p4d metadata's msgpack, decoded under the Python reader's limits (formats/p4d.py
// unpack_meta): arrays <= 2^20, maps <= 1024 entries with string keys, strings <= 1 MiB, no bin
// or ext, nothing after the top-level object. Any violation throws one Error naming it.

const MAX_ARRAY = 1 << 20;
const MAX_MAP = 1 << 10;
const MAX_STR = 1 << 20;
const MAX_DEPTH = 512;

/** The one object a msgpack byte string holds (Uint8Array) -> plain JS values. */
export function unpackMeta(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let pos = 0;
  const need = (n) => {
    if (pos + n > bytes.length) throw new Error(`msgpack ends inside an object at byte ${pos}`);
  };
  const u8 = () => { need(1); return bytes[pos++]; };
  const u16 = () => { need(2); const v = view.getUint16(pos); pos += 2; return v; };
  const u32 = () => { need(4); const v = view.getUint32(pos); pos += 4; return v; };
  const u64 = () => { need(8); const v = Number(view.getBigUint64(pos)); pos += 8; return v; };
  const i64 = () => { need(8); const v = Number(view.getBigInt64(pos)); pos += 8; return v; };
  const str = (n) => {
    if (n > MAX_STR) throw new Error(`msgpack string of ${n} bytes exceeds ${MAX_STR}`);
    need(n);
    const s = utf8.decode(bytes.subarray(pos, pos + n));
    pos += n;
    return s;
  };
  const arr = (n, depth) => {
    if (n > MAX_ARRAY) throw new Error(`msgpack array of ${n} entries exceeds ${MAX_ARRAY}`);
    const out = [];
    for (let i = 0; i < n; i++) out.push(value(depth + 1));
    return out;
  };
  const map = (n, depth) => {
    if (n > MAX_MAP) throw new Error(`msgpack map of ${n} entries exceeds ${MAX_MAP}`);
    const out = Object.create(null);
    for (let i = 0; i < n; i++) {
      const k = value(depth + 1);
      if (typeof k !== "string") throw new Error("msgpack map key is not a string");
      out[k] = value(depth + 1);
    }
    return out;
  };
  function value(depth) {
    if (depth > MAX_DEPTH) throw new Error("msgpack nests too deep");
    const b = u8();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if ((b & 0xf0) === 0x80) return map(b & 0x0f, depth);
    if ((b & 0xf0) === 0x90) return arr(b & 0x0f, depth);
    if ((b & 0xe0) === 0xa0) return str(b & 0x1f);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xca: { need(4); const v = view.getFloat32(pos); pos += 4; return v; }
      case 0xcb: { need(8); const v = view.getFloat64(pos); pos += 8; return v; }
      case 0xcc: return u8();
      case 0xcd: return u16();
      case 0xce: return u32();
      case 0xcf: return u64();
      case 0xd0: { need(1); const v = view.getInt8(pos); pos += 1; return v; }
      case 0xd1: { need(2); const v = view.getInt16(pos); pos += 2; return v; }
      case 0xd2: { need(4); const v = view.getInt32(pos); pos += 4; return v; }
      case 0xd3: return i64();
      case 0xd9: return str(u8());
      case 0xda: return str(u16());
      case 0xdb: return str(u32());
      case 0xdc: return arr(u16(), depth);
      case 0xdd: return arr(u32(), depth);
      case 0xde: return map(u16(), depth);
      case 0xdf: return map(u32(), depth);
      default:
        throw new Error(`msgpack type 0x${b.toString(16)} is not allowed (bin and ext are refused)`);
    }
  }
  const out = value(0);
  if (pos !== bytes.length) throw new Error(`${bytes.length - pos} bytes follow the msgpack object`);
  if (out === null || typeof out !== "object" || Array.isArray(out)) throw new Error("top level is not a map");
  return out;
}
