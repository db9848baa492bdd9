// The frame on the GPU (player/render.py is the Python twin): per source view a blend pass into
// a slot of the source layers, the depth splat into a coarse z-buffer and its crack fill, then
// the warp composited onto the canvas. Decoded tiles live in texture-array layers that the
// TileStore hands out.

import { orbitPose, relative, viewWeights } from "./cameras.js";
import { GUIDE_SIGMA } from "./lighting.js";
import { BLEND_FS, CRACK_FS, FULLSCREEN_VS, SPLAT_FS, SPLAT_VS, WARP_FS } from "./shaders.js";

const ZTOL = 0.02, DISC = 0.05, REFINE = 2;

/** Python's round(): halves to even, so both players pick the same output size. */
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The blend fraction t in [0, 1] in the 1/256 steps the blend mixes in (kernels.blend_steps). */
export const blendSteps = (t) => roundHalfEven(Math.min(Math.max(t, 0), 1) * 256);

function program(gl, vs, fs) {
  const p = gl.createProgram();
  for (const [type, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(`shader: ${gl.getShaderInfoLog(s)}`);
    gl.attachShader(p, s);
  }
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(`shader link: ${gl.getProgramInfoLog(p)}`);
  const u = new Proxy({}, { get: (cache, name) => (name in cache ? cache[name] : (cache[name] = gl.getUniformLocation(p, name))) });
  return { p, u };
}

function texArray(gl, internal, w, h, layers) {
  const t = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D_ARRAY, t);
  gl.texStorage3D(gl.TEXTURE_2D_ARRAY, 1, internal, w, h, layers);
  for (const k of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D_ARRAY, k, gl.NEAREST);
  return t;
}

function tex2d(gl, internal, w, h, filter) {
  const t = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, t);
  gl.texStorage2D(gl.TEXTURE_2D, 1, internal, w, h);
  for (const k of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, k, filter);
  for (const k of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T]) gl.texParameteri(gl.TEXTURE_2D, k, gl.CLAMP_TO_EDGE);
  return t;
}

export class Renderer {
  /** size: the canvas's longest side in pixels (default the tile's); layers: decoded tiles held. */
  constructor(canvas, meta, { size = null, background = [0.08, 0.08, 0.09], layers = 64 } = {}) {
    const gl = canvas.getContext("webgl2", { alpha: false, antialias: false, depth: false, preserveDrawingBuffer: true });
    if (!gl) throw new Error("this browser has no WebGL2");
    if (!gl.getExtension("EXT_color_buffer_float")) throw new Error("this browser cannot render to float textures (EXT_color_buffer_float)");
    this.gl = gl;
    this.meta = meta;
    this.bg = background;
    const g = meta.grid, k = g.intrinsics;
    this.H = k.height;
    this.W = k.width;
    const s = size ? size / Math.max(this.H, this.W) : 1;
    this.ho = size ? Math.max(1, roundHalfEven(this.H * s)) : this.H;
    this.wo = size ? Math.max(1, roundHalfEven(this.W * s)) : this.W;
    canvas.width = this.wo;
    canvas.height = this.ho;
    // player/render.py: the z-buffer's cell is 1/128 of the output (at most the lattice's 1/64).
    const stride = Math.max(1, Math.floor(Math.min(this.ho, this.wo) / 64));
    this.zstride = Math.min(stride, Math.max(1, Math.floor(Math.min(this.ho, this.wo) / 128)));
    this.hc = Math.ceil(this.ho / this.zstride);
    this.wc = Math.ceil(this.wo / this.zstride);
    this.outK = [k.fx * this.wo / this.W, k.fy * this.ho / this.H, k.cx * this.wo / this.W, k.cy * this.ho / this.H];
    this.srcK = [k.fx, k.fy, k.cx, k.cy];
    this.cams = [];
    for (const p of g.pitches) for (const y of g.yaws) this.cams.push(orbitPose(y, p, g.radius, g.center));
    this.layers = Math.min(layers, gl.getParameter(gl.MAX_ARRAY_TEXTURE_LAYERS));
    this.tileC = texArray(gl, gl.RGBA8, this.W, this.H, this.layers);
    this.tileD = texArray(gl, gl.R32F, this.W, this.H, this.layers);
    // Relighting (format 1.2): each tile's normal codes, the gain table, the light's version
    // (a held slot was relit with the table it names).
    const kinds = meta.tiles.kinds;
    this.ns = meta.tiles.normal_scale ?? 1;
    this.nw = Math.ceil(this.W / this.ns);
    this.nh = Math.ceil(this.H / this.ns);
    this.tileN = texArray(gl, gl.RG8, kinds.includes("normal") ? this.nw : 1, kinds.includes("normal") ? this.nh : 1,
      kinds.includes("normal") ? this.layers : 1);
    this.lut = tex2d(gl, gl.R32F, 256, 256, gl.NEAREST);
    this.relight = false;
    this.lightId = 0;
    this.srcC = texArray(gl, gl.RGBA8, this.W, this.H, 4);
    this.srcD = texArray(gl, gl.R32F, this.W, this.H, 4);
    this.slotFb = [0, 1, 2, 3].map((i) => {
      const fb = gl.createFramebuffer();
      gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
      gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, this.srcC, 0, i);
      gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT1, this.srcD, 0, i);
      gl.drawBuffers([gl.COLOR_ATTACHMENT0, gl.COLOR_ATTACHMENT1]);
      return fb;
    });
    this.zTex = [tex2d(gl, gl.R32F, this.wc, this.hc, gl.NEAREST), tex2d(gl, gl.R32F, this.wc, this.hc, gl.NEAREST)];
    const zdepth = gl.createRenderbuffer();
    gl.bindRenderbuffer(gl.RENDERBUFFER, zdepth);
    gl.renderbufferStorage(gl.RENDERBUFFER, gl.DEPTH_COMPONENT32F, this.wc, this.hc);
    this.zFb = this.zTex.map((t, i) => {
      const fb = gl.createFramebuffer();
      gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, t, 0);
      if (i === 0) gl.framebufferRenderbuffer(gl.FRAMEBUFFER, gl.DEPTH_ATTACHMENT, gl.RENDERBUFFER, zdepth);
      if (gl.checkFramebufferStatus(gl.FRAMEBUFFER) !== gl.FRAMEBUFFER_COMPLETE) throw new Error("cannot render the z-buffer on this GPU");
      return fb;
    });
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    this.blend = program(gl, FULLSCREEN_VS, BLEND_FS);
    this.splat = program(gl, SPLAT_VS, SPLAT_FS);
    this.crack = program(gl, FULLSCREEN_VS, CRACK_FS);
    this.warp = program(gl, FULLSCREEN_VS, WARP_FS);
    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    this.held = [null, null, null, null];
  }

  /** Puts a decoded tile ({rgba, depth}) into texture layer ``layer``. */
  upload(layer, tile) {
    const gl = this.gl;
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.bindTexture(gl.TEXTURE_2D_ARRAY, this.tileC);
    gl.texSubImage3D(gl.TEXTURE_2D_ARRAY, 0, 0, 0, layer, this.W, this.H, 1, gl.RGBA, gl.UNSIGNED_BYTE, tile.rgba);
    gl.bindTexture(gl.TEXTURE_2D_ARRAY, this.tileD);
    gl.texSubImage3D(gl.TEXTURE_2D_ARRAY, 0, 0, 0, layer, this.W, this.H, 1, gl.RED, gl.FLOAT, tile.depth);
    if (tile.normal) {
      gl.bindTexture(gl.TEXTURE_2D_ARRAY, this.tileN);
      gl.texSubImage3D(gl.TEXTURE_2D_ARRAY, 0, 0, 0, layer, this.nw, this.nh, 1, gl.RG, gl.UNSIGNED_BYTE, tile.normal);
    }
    for (let i = 0; i < 4; i++) if (this.held[i] && this.held[i].layers.includes(layer)) this.held[i] = null;
  }

  /** Relight with this gain table (Float32Array [65536], lighting.js ``Relighter``), or show the
   * captured light (null). */
  setLight(table) {
    const gl = this.gl;
    this.relight = Boolean(table);
    this.lightId += 1;
    if (table) {
      gl.pixelStorei(gl.UNPACK_ALIGNMENT, 4);
      gl.bindTexture(gl.TEXTURE_2D, this.lut);
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, 256, 256, gl.RED, gl.FLOAT, table);
    }
  }

  /** The views (and weights) a frame at (yaw, pitch) draws. */
  views(yaw, pitch) {
    return viewWeights(this.meta.grid.yaws, this.meta.grid.pitches, yaw, pitch);
  }

  /** The tiles [k, v] a frame needs: every stream's keyframes in every weighted view. */
  needs(yaw, pitch, streams) {
    const { idx, w } = this.views(yaw, pitch);
    const out = [];
    for (let j = 0; j < 4; j++) {
      if (!(w[j] > 0)) continue;
      for (const [k, nxt] of streams) out.push([k, idx[j]], [nxt, idx[j]]);
    }
    return out;
  }

  /** Draws the frame: streams [[k, nxt, phase, weight]] (1 or 2) seen from (yaw, pitch, zoom);
   * layerOf(k, v) gives the texture layer of each tile ``needs`` named. */
  draw(yaw, pitch, zoom, streams, layerOf) {
    const gl = this.gl;
    const { idx, w } = this.views(yaw, pitch);
    const tgt = orbitPose(yaw, pitch, this.meta.grid.radius, this.meta.grid.center);
    const tk = [this.outK[0] * zoom, this.outK[1] * zoom, this.outK[2], this.outK[3]];
    const steps = (k0, k1, phase) => (k1 !== k0 ? blendSteps(phase) : 0);
    const fade = streams.length === 2 && blendSteps(streams[1][3]) > 0;
    gl.bindVertexArray(this.vao);
    gl.disable(gl.DEPTH_TEST);
    // 1. Each weighted view's tiles blended in time (and across a jump) into its slot.
    gl.useProgram(this.blend.p);
    gl.viewport(0, 0, this.W, this.H);
    this._bind(this.blend, [["uTileC", this.tileC], ["uTileD", this.tileD], ["uTileN", this.tileN],
      ["uLut", this.lut, gl.TEXTURE_2D]]);
    gl.uniform1i(this.blend.u.uRelight, this.relight ? 1 : 0);
    gl.uniform1i(this.blend.u.uNScale, this.ns);
    gl.uniform2i(this.blend.u.uNSize, this.nw, this.nh);
    gl.uniform1f(this.blend.u.uGuide, 1 / (GUIDE_SIGMA * GUIDE_SIGMA));
    for (let j = 0; j < 4; j++) {
      if (!(w[j] > 0)) continue;
      const v = idx[j];
      const [s0, s1] = fade ? streams : [streams[0], streams[0]];
      const t0 = steps(s0[0], s0[1], s0[2]), t1 = steps(s1[0], s1[1], s1[2]);
      const layers = [layerOf(s0[0], v), layerOf(t0 ? s0[1] : s0[0], v), layerOf(s1[0], v), layerOf(t1 ? s1[1] : s1[0], v)];
      const key = `${layers}|${t0}|${t1}|${fade ? blendSteps(streams[1][3]) : -1}|${this.relight ? this.lightId : 0}`;
      if (this.held[j] && this.held[j].key === key) continue;
      gl.bindFramebuffer(gl.FRAMEBUFFER, this.slotFb[j]);
      gl.uniform4i(this.blend.u.uLayer, ...layers);
      gl.uniform3i(this.blend.u.uT, t0, t1, fade ? blendSteps(streams[1][3]) : 0);
      gl.uniform1i(this.blend.u.uFade, fade ? 1 : 0);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
      this.held[j] = { key, layers };
    }
    // 2. The sources' depth splatted into the coarse z-buffer (z-min by the depth test).
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.zFb[0]);
    gl.viewport(0, 0, this.wc, this.hc);
    gl.clearColor(0, 0, 0, 0);
    gl.clearDepth(1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    gl.enable(gl.DEPTH_TEST);
    gl.depthFunc(gl.LESS);
    gl.useProgram(this.splat.p);
    this._bind(this.splat, [["uSrcD", this.srcD]]);
    const cell = [tk[0] / this.zstride, tk[1] / this.zstride, tk[2] / this.zstride - 0.5, tk[3] / this.zstride - 0.5];
    gl.uniform4f(this.splat.u.uK, ...this.srcK);
    gl.uniform4f(this.splat.u.uCell, ...cell);
    gl.uniform2f(this.splat.u.uCoarse, this.wc, this.hc);
    const sstride = Math.max(1, Math.trunc(this.zstride * this.srcK[0] / tk[0] + 0.5));
    const half = sstride >> 1;
    const perRow = Math.ceil((this.W - half) / sstride), rows = Math.ceil((this.H - half) / sstride);
    for (let j = 0; j < 4; j++) {
      if (!(w[j] > 0)) continue;
      const { M, o } = relative(tgt, this.cams[idx[j]]);
      gl.uniform1i(this.splat.u.uSlot, j);
      gl.uniform3i(this.splat.u.uGrid, sstride, half, perRow);
      gl.uniform3f(this.splat.u.uM0, ...M[0]);
      gl.uniform3f(this.splat.u.uM1, ...M[1]);
      gl.uniform3f(this.splat.u.uM2, ...M[2]);
      gl.uniform3f(this.splat.u.uO, ...o);
      gl.drawArrays(gl.POINTS, 0, perRow * rows);
    }
    gl.disable(gl.DEPTH_TEST);
    // 3. Crack fill into the second z-buffer.
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.zFb[1]);
    gl.useProgram(this.crack.p);
    this._bind(this.crack, [["uZ", this.zTex[0], gl.TEXTURE_2D]]);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    // 4. The warp, composited onto the canvas.
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.viewport(0, 0, this.wo, this.ho);
    gl.useProgram(this.warp.p);
    const u = this.warp.u;
    this._bind(this.warp, [["uSrcC", this.srcC], ["uSrcD", this.srcD], ["uZ", this.zTex[1], gl.TEXTURE_2D]]);
    const rel = [0, 1, 2, 3].map((j) => relative(this.cams[idx[j]], tgt));
    let ref = -1;
    for (let j = 0; j < 4; j++) if (w[j] > 0 && (ref < 0 || w[j] > w[ref])) ref = j;
    gl.uniform4f(u.uTgtK, ...tk);
    gl.uniform1f(u.uZStride, this.zstride);
    gl.uniform2i(u.uSrcSize, this.W, this.H);
    gl.uniform1i(u.uRef, ref);
    gl.uniform1fv(u["uW[0]"], w);
    gl.uniform4fv(u["uK[0]"], [0, 1, 2, 3].flatMap(() => this.srcK));
    for (const [name, pick] of [["uM0", (r) => r.M[0]], ["uM1", (r) => r.M[1]], ["uM2", (r) => r.M[2]], ["uO", (r) => r.o]]) {
      gl.uniform3fv(u[`${name}[0]`], rel.flatMap(pick));
    }
    gl.uniform1f(u.uZtol, ZTOL);
    gl.uniform1f(u.uDisc, DISC);
    gl.uniform1f(u.uOutH, this.ho);
    gl.uniform1i(u.uRefine, REFINE);
    gl.uniform3f(u.uBg, ...this.bg);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
  }

  /** A blank frame of the background colour (a file with no preview, before its first tiles). */
  clear() {
    const gl = this.gl;
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.clearColor(...this.bg.map((c) => Math.floor(255 * c + 0.5) / 255), 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
  }

  /** Waits for the GPU (frame timing in benches). */
  sync() {
    const px = new Uint8Array(4);
    this.gl.readPixels(0, 0, 1, 1, this.gl.RGBA, this.gl.UNSIGNED_BYTE, px);
  }

  _bind(prog, textures) {
    const gl = this.gl;
    textures.forEach(([name, tex, target = gl.TEXTURE_2D_ARRAY], i) => {
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(target, tex);
      gl.uniform1i(prog.u[name], i);
    });
  }
}
