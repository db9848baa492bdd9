// The play-time relight's gain table (format 1.2), as player/light.py and formats/lighting.py
// compute it: per packed normal code u * 256 + v, the light reaching that normal with the key
// moved over the light the capture had, clamped. The shader reads it per source pixel.

export const GAIN_MAX = 4, FLOOR = 0.1;
// The guide's colour scale in 8-bit levels when gains are upsampled between normal samples
// (player/kernels/relight.py GUIDE_SIGMA).
export const GUIDE_SIGMA = 48;
const Y00 = 0.282095;

/** Octahedral codes (u, v) -> unit normal [x, y, z] (docs/p4d-format.md, "Normals and lighting"). */
export function octDecode(u, v) {
  let x = u / 127.5 - 1, y = v / 127.5 - 1;
  const z = 1 - Math.abs(x) - Math.abs(y);
  const t = Math.max(-z, 0);
  x -= x >= 0 ? t : -t;
  y -= y >= 0 ? t : -t;
  const n = Math.hypot(x, y, z);
  return [x / n, y / n, z / n];
}

/** (yaw, pitch) degrees -> unit head-frame direction (yaw > 0 towards the subject's left). */
export function direction(yaw, pitch) {
  const y = yaw * Math.PI / 180, p = pitch * Math.PI / 180;
  return [Math.cos(p) * Math.sin(y), Math.sin(p), Math.cos(p) * Math.cos(y)];
}

function basis([x, y, z]) {
  return [Y00, 0.488603 * y, 0.488603 * z, 0.488603 * x, 1.092548 * x * y, 1.092548 * y * z,
    0.315392 * (3 * z * z - 1), 1.092548 * x * z, 0.546274 * (x * x - y * y)];
}

/** Funk-Hecke eigenvalues of the wrapped lobe max((t + w) / (1 + w), 0), bands 0-2 (exact). */
export function wrappedBands(w) {
  // integral over [-w, 1] of (t + w) / (1 + w) * P_l(t), in closed form
  const a = -w, f = (t) => [(t * t / 2 + w * t), (t ** 3 / 3 + w * t * t / 2), (1.5 * (t ** 4 / 4 + w * t ** 3 / 3) - 0.5 * (t * t / 2 + w * t))];
  const hi = f(1), lo = f(a);
  return hi.map((x, l) => 2 * Math.PI * (x - lo[l]) / (1 + w));
}

const keyShading = (n, d, w) => Math.max((n[0] * d[0] + n[1] * d[1] + n[2] * d[2] + w) / (1 + w), 0);

/** Gain tables of one file's captured light (meta.lighting {sh, key}). */
export class Relighter {
  constructor(lighting) {
    const [yaw, pitch, amount, wrap] = lighting.key;
    this.key = { yaw, pitch, amount, wrap };
    this.mean = lighting.sh[0] * Y00;  // the captured mean light: the unit of a strength
    const d = direction(yaw, pitch), bands = wrappedBands(wrap), band = [0, 1, 1, 1, 2, 2, 2, 2, 2];
    const yd = basis(d);
    const amb = lighting.sh.map((c, i) => c - amount * bands[band[i]] * yd[i]);  // the ambient: sh without the key
    this.normals = new Float32Array(65536 * 3);
    this.ambient = new Float32Array(65536);
    this.invCap = new Float32Array(65536);
    const floor = Math.max(FLOOR * lighting.sh[0] * Y00, 1e-6);
    for (let u = 0; u < 256; u++) {
      for (let v = 0; v < 256; v++) {
        const i = u * 256 + v, n = octDecode(u, v), b = basis(n);
        let a = 0;
        for (let j = 0; j < 9; j++) a += amb[j] * b[j];
        this.normals.set(n, 3 * i);
        this.ambient[i] = a;
        this.invCap[i] = 1 / Math.max(a + amount * keyShading(n, d, wrap), floor);
      }
    }
  }

  /** Float32Array [65536]: the gain per packed code for a key at (yaw, pitch) of ``strength``
   * times the captured mean light (null: the captured key's own amount; formats/lighting.py key_amount). */
  table(yaw, pitch, strength = null) {
    const d = direction(yaw, pitch), { wrap } = this.key, out = new Float32Array(65536);
    const amount = strength === null ? this.key.amount : strength * this.mean;
    const n = [0, 0, 0];
    for (let i = 0; i < 65536; i++) {
      n[0] = this.normals[3 * i]; n[1] = this.normals[3 * i + 1]; n[2] = this.normals[3 * i + 2];
      const s = this.ambient[i] + amount * keyShading(n, d, wrap);
      out[i] = Math.min(Math.max(s, 0) * this.invCap[i], GAIN_MAX);
    }
    return out;
  }
}
