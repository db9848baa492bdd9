// The camera model of formats/camera.py (OpenCV axes, orbit poses around the head centre) and
// the view grid's bilinear weights (player/kernels/views.py), in doubles; the shaders get
// float32 copies.

const rad = (d) => d * (Math.PI / 180);
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const norm = (a) => Math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]);

/** {R: camera->head rotation as rows [3][3], C: centre [3]} of the orbit camera at (yaw, pitch). */
export function orbitPose(yaw, pitch, radius, center) {
  const y = rad(yaw), p = rad(pitch);
  const eye = [center[0] + radius * Math.cos(p) * Math.sin(y), center[1] + radius * Math.sin(p),
               center[2] + radius * Math.cos(p) * Math.cos(y)];
  let f = [center[0] - eye[0], center[1] - eye[1], center[2] - eye[2]];
  const nf = norm(f);
  f = f.map((c) => c / nf);
  let x = cross(f, [0, 1, 0]);
  const nx = norm(x);
  x = nx < 1e-9 ? [1, 0, 0] : x.map((c) => c / nx);
  const up = cross(f, x);
  return { R: [[x[0], up[0], f[0]], [x[1], up[1], f[1]], [x[2], up[2], f[2]]], C: eye };
}

/** The affine map from camera b's frame to camera a's: q_a = M q_b + o, M = Ra^T Rb,
 * o = Ra^T (Cb - Ca). Returns {M: rows [3][3], o: [3]}. */
export function relative(a, b) {
  const M = [[0, 0, 0], [0, 0, 0], [0, 0, 0]], o = [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      let acc = 0;
      for (let k = 0; k < 3; k++) acc += a.R[k][i] * b.R[k][j];
      M[i][j] = acc;
    }
    let acc = 0;
    for (let k = 0; k < 3; k++) acc += a.R[k][i] * (b.C[k] - a.C[k]);
    o[i] = acc;
  }
  return { M, o };
}

function axisCell(vals, x) {
  const n = vals.length;
  if (n === 1 || x <= vals[0]) return [0, 0, 0];
  if (x >= vals[n - 1]) return [n - 1, n - 1, 0];
  let i = 0;
  while (i < n - 2 && x >= vals[i + 1]) i++;
  return [i, i + 1, (x - vals[i]) / (vals[i + 1] - vals[i])];
}

/** {idx: [4] view indices, w: [4] weights} of the grid views around (yaw, pitch); sharpen >= 1
 * favours the nearest (player --view-sharpen). */
export function viewWeights(yaws, pitches, yaw, pitch, sharpen = 1) {
  let [i0, i1, ty] = axisCell(yaws, yaw);
  let [j0, j1, tp] = axisCell(pitches, pitch);
  const sh = (t) => Math.min(Math.max((t - 0.5) * sharpen + 0.5, 0), 1);
  ty = sh(ty);
  tp = sh(tp);
  const ny = yaws.length;
  const f = Math.fround;
  return { idx: [j0 * ny + i0, j0 * ny + i1, j1 * ny + i0, j1 * ny + i1],
           w: [f((1 - tp) * (1 - ty)), f((1 - tp) * ty), f(tp * (1 - ty)), f(tp * ty)] };
}
