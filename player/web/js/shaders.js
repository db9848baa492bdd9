// The frame's GLSL passes, after the Python player's kernels (player/kernels/): the temporal
// blend and crossfade of each source view (blend.py), the forward splat of the sources' depth
// into a coarse target z-buffer and its crack fill (splat.py), and the per-pixel warp (the rule
// of pixels.py and lattice.py: coarse depth, depth-edge pick and refinement on the nearest view,
// rim test, projection, soft z-test, bilinear taps, the hole fill) composited over the
// background (compositing.py). The Python warp interpolates most lattice cells (mesh.py); here
// every pixel runs the rule itself, which a GPU affords.
// Image rows are top-down in every texture (row y at texel row y); only the canvas is flipped.

const HEAD = `#version 300 es
precision highp float;
precision highp int;
precision highp sampler2D;
precision highp sampler2DArray;
`;

export const FULLSCREEN_VS = `${HEAD}
void main() {
  vec2 p = vec2(float((gl_VertexID & 1) * 4 - 1), float((gl_VertexID >> 1) * 4 - 1));
  gl_Position = vec4(p, 0.0, 1.0);
}`;

// One source slot: keyframes k -> k+1 of its view mixed at t in 1/256 steps, as uint8
// arithmetic (x (256 - t) + y t + 128) >> 8; depths mixed where both have a surface. With a
// crossfade both streams are mixed so, then the two at uT.z. With a light (format 1.2) each tile's
// colour is relit before the mix, as player/render.py blends relit tiles: times the gain of its
// normals (the table's gain per normal sample, sample i at pixel i * s + s / 2, joint-bilateral
// between samples: bilinear weights times each sample pixel's likeness to this one), in 8.8 fixed point with the gain lowered so the largest channel stays within
// alpha (player/kernels/relight.py ``_apply``).
export const BLEND_FS = `${HEAD}
uniform sampler2DArray uTileC;
uniform sampler2DArray uTileD;
uniform sampler2DArray uTileN;  // normal codes (u, v) / 255 at 1/uNScale
uniform sampler2D uLut;         // gain per code: texel (v, u)
uniform bool uRelight;
uniform int uNScale;
uniform ivec2 uNSize;           // normal tile w, h
uniform ivec4 uLayer;  // a0, b0, a1, b1
uniform ivec3 uT;      // t0, t1, t (1/256)
uniform bool uFade;
float gainAt(ivec2 q, int layer) {
  q = clamp(q, ivec2(0), uNSize - 1);
  ivec2 code = ivec2(texelFetch(uTileN, ivec3(q, layer), 0).rg * 255.0 + 0.5);
  return texelFetch(uLut, code.yx, 0).r;
}
uniform float uGuide;           // 1 / sigma^2 of the guide (player/kernels/relight.py GUIDE_SIGMA)
// How much pixel c looks like the pixel of normal sample q (relight.py _likeness).
float likeness(uvec4 c, ivec2 q, int layer) {
  ivec2 g = min(q * uNScale + uNScale / 2, textureSize(uTileC, 0).xy - 1);
  vec4 d = vec4(c) - floor(texelFetch(uTileC, ivec3(g, layer), 0) * 255.0 + 0.5);
  float r = 1.0 / (1.0 + dot(d, d) * uGuide);
  return r * r + 1e-3;
}
float gain(ivec2 p, int layer, uvec4 c) {
  if (uNScale == 1) return gainAt(p, layer);
  float inv = 1.0 / float(uNScale);
  vec2 f = (vec2(p) - float(uNScale / 2)) * inv;
  ivec2 i0 = clamp(ivec2(floor(f)), ivec2(0), uNSize - 1);
  ivec2 i1 = min(i0 + 1, uNSize - 1);
  vec2 w = clamp(f - vec2(i0), 0.0, 1.0);
  ivec2 i01 = ivec2(i1.x, i0.y), i10 = ivec2(i0.x, i1.y);
  // Joint bilateral upsampling, as relight.py: bilinear weights times the likeness of each
  // sample's own pixel, so a gain stays on its side of a colour edge.
  float w00 = (1.0 - w.x) * (1.0 - w.y) * likeness(c, i0, layer);
  float w01 = w.x * (1.0 - w.y) * likeness(c, i01, layer);
  float w10 = (1.0 - w.x) * w.y * likeness(c, i10, layer);
  float w11 = w.x * w.y * likeness(c, i1, layer);
  return (w00 * gainAt(i0, layer) + w01 * gainAt(i01, layer) + w10 * gainAt(i10, layer) + w11 * gainAt(i1, layer))
         / (w00 + w01 + w10 + w11);
}
layout(location = 0) out vec4 oC;
layout(location = 1) out float oD;
uvec4 texel(int layer, ivec2 p) {
  uvec4 c = uvec4(texelFetch(uTileC, ivec3(p, layer), 0) * 255.0 + 0.5);
  if (!uRelight) return c;
  uint gi = uint(gain(p, layer, c) * 256.0 + 0.5), m = max(c.r, max(c.g, c.b));
  if (m * gi > (c.a << 8u)) gi = (c.a << 8u) / m;  // the largest channel stays within alpha: hue kept
  c.rgb = min((c.rgb * gi + 128u) >> 8u, uvec3(c.a));
  return c;
}
float depth(int layer, ivec2 p) { return texelFetch(uTileD, ivec3(p, layer), 0).r; }
uvec4 mixC(uvec4 x, uvec4 y, int t) { return (x * uint(256 - t) + y * uint(t) + 128u) >> 8u; }
float mixD(float a, float b, int t) { float tf = float(t) / 256.0; return (a > 0.0 && b > 0.0) ? a + (b - a) * tf : a + b; }
void main() {
  ivec2 p = ivec2(gl_FragCoord.xy);
  uvec4 c = mixC(texel(uLayer.x, p), texel(uLayer.y, p), uT.x);
  float d = mixD(depth(uLayer.x, p), depth(uLayer.y, p), uT.x);
  if (uFade) {
    uvec4 c1 = mixC(texel(uLayer.z, p), texel(uLayer.w, p), uT.y);
    float d1 = mixD(depth(uLayer.z, p), depth(uLayer.w, p), uT.y);
    c = mixC(c, c1, uT.z);
    d = mixD(d, d1, uT.z);
  }
  oC = vec4(c) / 255.0;
  oD = d;
}`;

// One source sample per vertex, a 2x2 point on the coarse z-buffer cells at the top left of
// its footprint (no cracks up to 2x magnification); the depth test keeps the nearest.
export const SPLAT_VS = `${HEAD}
uniform sampler2DArray uSrcD;
uniform int uSlot;
uniform ivec3 uGrid;   // sample stride, first sample (stride / 2), samples per row
uniform vec4 uK;       // source fx, fy, cx, cy
uniform vec3 uM0, uM1, uM2, uO;  // source -> target
uniform vec4 uCell;    // target fx / zstride, fy / zstride, cx / zstride - 1/2, cy / zstride - 1/2
uniform vec2 uCoarse;  // z-buffer width, height in cells
flat out float vZ;
void main() {
  int x = uGrid.y + (gl_VertexID % uGrid.z) * uGrid.x;
  int y = uGrid.y + (gl_VertexID / uGrid.z) * uGrid.x;
  float d = texelFetch(uSrcD, ivec3(x, y, uSlot), 0).r;
  vec3 p = vec3((float(x) + 0.5 - uK.z) * (1.0 / uK.x) * d, (float(y) + 0.5 - uK.w) / uK.y * d, d);
  vec3 q = vec3(dot(uM0, p), dot(uM1, p), dot(uM2, p)) + uO;
  gl_PointSize = 2.0;
  vZ = q.z;
  if (!(d > 0.0 && q.z > 1e-6)) { gl_Position = vec4(4.0, 4.0, 0.0, 1.0); return; }
  float iz = 1.0 / q.z;
  float ci = floor(q.x * iz * uCell.x + uCell.z), cj = floor(q.y * iz * uCell.y + uCell.w);
  gl_Position = vec4((ci + 1.0) / uCoarse.x * 2.0 - 1.0, (cj + 1.0) / uCoarse.y * 2.0 - 1.0, 0.0, 1.0);
}`;

export const SPLAT_FS = `${HEAD}
flat in float vZ;
out float oZ;
void main() { oZ = vZ; gl_FragDepth = vZ / (vZ + 1.0); }`;

// Crack fill: an empty cell with surface cells on opposite sides takes the mean of its surface
// neighbours; a cell that only borders the surface stays empty (the silhouette does not grow).
export const CRACK_FS = `${HEAD}
uniform sampler2D uZ;
out float oZ;
float at(int i, int j) { return texelFetch(uZ, ivec2(i, j), 0).r; }
void main() {
  ivec2 n = textureSize(uZ, 0);
  int i = int(gl_FragCoord.x), j = int(gl_FragCoord.y);
  float v = at(i, j);
  if (v > 0.0) { oZ = v; return; }
  int im = max(i - 1, 0), ip = min(i + 1, n.x - 1), jm = max(j - 1, 0), jp = min(j + 1, n.y - 1);
  bool crack = (at(im, j) > 0.0 && at(ip, j) > 0.0) || (at(i, jm) > 0.0 && at(i, jp) > 0.0) ||
               (at(im, jm) > 0.0 && at(ip, jp) > 0.0) || (at(ip, jm) > 0.0 && at(im, jp) > 0.0);
  float acc = 0.0, cnt = 0.0;
  for (int jj = jm; jj <= jp; jj++) for (int ii = im; ii <= ip; ii++) {
    float u = at(ii, jj);
    if (u > 0.0) { acc += u; cnt += 1.0; }
  }
  oZ = crack && cnt > 0.0 ? acc / cnt : 0.0;
}`;

export const WARP_FS = `${HEAD}
uniform sampler2DArray uSrcC;
uniform sampler2DArray uSrcD;
uniform sampler2D uZ;
uniform vec4 uTgtK;        // target fx, fy, cx, cy (zoom included)
uniform float uZStride;
uniform ivec2 uSrcSize;    // W, H of the tiles
uniform int uRef;          // the slot with the largest weight (-1: none)
uniform float uW[4];       // view weights
uniform vec4 uK[4];        // source fx, fy, cx, cy
uniform vec3 uM0[4], uM1[4], uM2[4], uO[4];  // target -> source
uniform float uZtol, uDisc, uOutH;
uniform int uRefine;
uniform vec3 uBg;
out vec4 o;

vec3 toSrc(int s, vec3 ray, float z) {  // the target point at z-depth z on the ray, in source s
  return z * vec3(dot(uM0[s], ray), dot(uM1[s], ray), dot(uM2[s], ray)) + uO[s];
}
// The source's depth in the pixel the point falls in (-1: behind it or outside its image).
float under(int s, vec3 ray, float z, out float qz) {
  vec3 q = toSrc(s, ray, z);
  qz = q.z;
  if (q.z <= 1e-6) return -1.0;
  int i = int(floor(uK[s].x * q.x / q.z + uK[s].z)), j = int(floor(uK[s].y * q.y / q.z + uK[s].w));
  if (i < 0 || j < 0 || i >= uSrcSize.x || j >= uSrcSize.y) return -1.0;
  return texelFetch(uSrcD, ivec3(i, j, s), 0).r;
}
float residual(int s, vec3 ray, float z) {
  float qz, d = under(s, ray, z, qz);
  return d > 0.0 ? abs(d - qz) / qz : 1.0;
}
bool misses(int s, vec3 ray, float z, float tol) {  // inside, and no surface there or one > tol away
  float qz, d = under(s, ray, z, qz);
  return d >= 0.0 && (d <= 0.0 || abs(d - qz) > tol * qz);
}
float zcell(int i, int j) {
  ivec2 n = textureSize(uZ, 0);
  return texelFetch(uZ, ivec2(clamp(i, 0, n.x - 1), clamp(j, 0, n.y - 1)), 0).r;
}
float surfaceDepth(vec2 px, vec3 ray) {
  float cu = (px.x + 0.5) / uZStride - 0.5, cv = (px.y + 0.5) / uZStride - 0.5;
  float fu = floor(cu), fv = floor(cv), tu = cu - fu, tv = cv - fv;
  int i0 = int(fu), j0 = int(fv);
  float z00 = zcell(i0, j0), z01 = zcell(i0 + 1, j0), z10 = zcell(i0, j0 + 1), z11 = zcell(i0 + 1, j0 + 1);
  float zmax = max(max(max(z00, z01), max(z10, z11)), 0.0);
  if (zmax <= 0.0) return 0.0;
  float zmin = min(min(z00 > 0.0 ? z00 : 1e30, z01 > 0.0 ? z01 : 1e30), min(z10 > 0.0 ? z10 : 1e30, z11 > 0.0 ? z11 : 1e30));
  bool full = z00 > 0.0 && z01 > 0.0 && z10 > 0.0 && z11 > 0.0;
  bool edge = zmax - zmin > uDisc * zmin;
  float z = (full && !edge) ? (1.0 - tv) * ((1.0 - tu) * z00 + tu * z01) + tv * ((1.0 - tu) * z10 + tu * z11) : zmin;
  float zfar = edge ? zmax : 0.0;
  bool rim = !full;
  if (uRef < 0) return z;
  int r = uRef;
  // Past the silhouette, where the nearest view sees nothing at the point: background.
  if (rim && misses(r, ray, z, 1e30)) return 0.0;
  // A depth edge: the candidate the nearest view agrees with.
  if (zfar > z && residual(r, ray, zfar) < residual(r, ray, z)) z = zfar;
  // Refinement on the nearest view's full-resolution depth; a step across an edge is refused.
  vec3 g = vec3(dot(uM0[r], ray), dot(uM1[r], ray), dot(uM2[r], ray));
  for (int it = 0; it < uRefine; it++) {
    float qz = z * g.z + uO[r].z;
    if (qz <= 1e-6 || g.z <= 1e-6) break;
    float u = uK[r].x * (z * g.x + uO[r].x) / qz + uK[r].z - 0.5;
    float v = uK[r].y * (z * g.y + uO[r].y) / qz + uK[r].w - 0.5;
    float fu2 = floor(u), fv2 = floor(v);
    int a = int(fu2), b = int(fv2);
    if (fu2 < 0.0 || fv2 < 0.0 || a + 1 >= uSrcSize.x || b + 1 >= uSrcSize.y) break;
    float d00 = texelFetch(uSrcD, ivec3(a, b, r), 0).r, d01 = texelFetch(uSrcD, ivec3(a + 1, b, r), 0).r;
    float d10 = texelFetch(uSrcD, ivec3(a, b + 1, r), 0).r, d11 = texelFetch(uSrcD, ivec3(a + 1, b + 1, r), 0).r;
    float su = u - fu2, sv = v - fv2;
    float w00 = d00 > 0.0 ? (1.0 - sv) * (1.0 - su) : 0.0, w01 = d01 > 0.0 ? (1.0 - sv) * su : 0.0;
    float w10 = d10 > 0.0 ? sv * (1.0 - su) : 0.0, w11 = d11 > 0.0 ? sv * su : 0.0;
    float ws = w00 + w01 + w10 + w11;
    if (ws < 1e-6) break;
    float zn = ((w00 * d00 + w01 * d01 + w10 * d10 + w11 * d11) / ws - uO[r].z) / g.z;
    if (abs(zn - z) > uDisc * z) break;
    z = zn;
  }
  if (rim && misses(r, ray, z, uDisc)) return 0.0;
  return z;
}
vec4 tap(int s, float fu, float fv, float di, float dj) {
  int i = int(clamp(fu + di, 0.0, float(uSrcSize.x - 1))), j = int(clamp(fv + dj, 0.0, float(uSrcSize.y - 1)));
  return floor(texelFetch(uSrcC, ivec3(i, j, s), 0) * 255.0 + 0.5);
}
void main() {
  vec2 px = vec2(gl_FragCoord.x - 0.5, uOutH - gl_FragCoord.y - 0.5);
  vec3 ray = vec3((px.x + 0.5 - uTgtK.z) / uTgtK.x, (px.y + 0.5 - uTgtK.w) / uTgtK.y, 1.0);
  float z = surfaceDepth(px, ray);
  if (!(z > 0.0)) {  // no surface: the background, without the sources' loop
    o = vec4(floor(255.0 * uBg + 0.5) / 255.0, 1.0);
    return;
  }
  vec4 accA = vec4(0.0), accV = vec4(0.0);
  float wa = 0.0, wv = 0.0;
  for (int s = 0; s < 4; s++) {
    if (!(uW[s] > 0.0) || !(z > 0.0)) continue;
    vec3 q = toSrc(s, vec3(ray.xy, 1.0), z);
    if (q.z <= 1e-6) continue;
    float iz = 1.0 / q.z;
    float u = uK[s].x * q.x * iz + uK[s].z - 0.5, v = uK[s].y * q.y * iz + uK[s].w - 0.5;
    if (u < -1.0 || v < -1.0 || u > float(uSrcSize.x) || v > float(uSrcSize.y)) continue;
    // Soft z-test at the nearest pixel: visible within ztol (relative), gone at 2 ztol.
    int ni = clamp(int(u + 0.5), 0, uSrcSize.x - 1), nj = clamp(int(v + 0.5), 0, uSrcSize.y - 1);
    float ds = texelFetch(uSrcD, ivec3(ni, nj, s), 0).r;
    float ex = q.z / (ds > 0.0 ? ds : 1.0) - 1.0 - uZtol;
    float vis = (ds > 0.0 && ex > 0.0) ? max(0.0, 1.0 - ex / uZtol) : 1.0;
    float fu = floor(u), fv = floor(v), tu = u - fu, tv = v - fv;
    vec4 c = (1.0 - tu) * (1.0 - tv) * tap(s, fu, fv, 0.0, 0.0) + tu * (1.0 - tv) * tap(s, fu, fv, 1.0, 0.0)
           + (1.0 - tu) * tv * tap(s, fu, fv, 0.0, 1.0) + tu * tv * tap(s, fu, fv, 1.0, 1.0);
    accA += uW[s] * c;
    accV += uW[s] * vis * c;
    wa += uW[s];
    wv += uW[s] * vis;
  }
  bool useV = wv > 1e-3 * wa && wv > 0.0;
  vec4 w = wa > 0.0 ? floor((useV ? accV / wv : accA / wa) + 0.5) : vec4(0.0);
  // Premultiplied colour over the background, as 8-bit arithmetic: c + round((255 - a) bg).
  vec3 rgb = min(w.rgb + floor((255.0 - w.a) * uBg + 0.5), 255.0);
  o = vec4(rgb / 255.0, 1.0);
}`;
