// The page around the canvas: the preview shown at once, the download's progress bar, the
// error and damaged-tile messages, and input (drag / touch to orbit, pinch / wheel to zoom,
// tap / space to pause, f or the button for fullscreen, arrows to nudge, m to change mode,
// shift + drag to move the light of a relightable portrait).

const IDLE_SECONDS = 3;  // free mode: the auto-orbit resumes this long after the last drag (player/window.py)
const MODE_CYCLE = ["free", "capture", "fixed"];
const el = (id) => document.getElementById(id);

export function setState(state) { document.body.dataset.state = state; }

export function showError(message) {
  const box = el("p4d-error");
  box.textContent = `Cannot play this portrait: ${message}`;
  box.hidden = false;
  el("p4d-progress").hidden = true;
  setState("error");
}

export function showNotice(message) {
  const box = el("p4d-notice");
  box.textContent = message;
  box.hidden = false;
}

export function showProgress(loaded, total) {
  const bar = el("p4d-progress");
  bar.hidden = total !== null && loaded >= total;
  bar.firstElementChild.style.width = total ? `${(100 * loaded / total).toFixed(1)}%` : "50%";
}

/** Sizes the canvases' box to the output's aspect (CSS scales it to the screen). */
export function layout(canvas, w, h) {
  for (const c of [canvas, el("p4d-preview")]) c.style.aspectRatio = `${w} / ${h}`;
  document.documentElement.style.setProperty("--p4d-aspect", `${w / h}`);
}

/** The preview (premultiplied RGBA) over the background, on its own canvas above #p4d. */
export function showPreview(preview, background) {
  const c = el("p4d-preview");
  c.width = preview.w;
  c.height = preview.h;
  const img = new ImageData(preview.w, preview.h);
  for (let i = 0; i < preview.w * preview.h; i++) {
    const a = preview.rgba[4 * i + 3];
    for (let ch = 0; ch < 3; ch++) img.data[4 * i + ch] = Math.min(255, preview.rgba[4 * i + ch] + Math.floor((255 - a) * background[ch] + 0.5));
    img.data[4 * i + 3] = 255;
  }
  c.getContext("2d").putImageData(img, 0, 0);
  c.hidden = false;
}

export function hidePreview() { el("p4d-preview").hidden = true; }

function toggleFullscreen() {
  const stage = el("p4d-stage");
  if (document.fullscreenElement) document.exitFullscreen();
  else if (stage.requestFullscreen) stage.requestFullscreen().catch(() => {});
}

/** Wires input to a Playback; onLight(dx, dy) gets shift + drags (pixels, right and up > 0). */
export function bindInput(canvas, pb, onLight = () => {}) {
  const pointers = new Map();
  let lastDrag = -Infinity, pinch = null, down = null;
  const nudge = (dy, dp) => {
    const [yaw, pitch] = pb.view();
    pb.manual = [yaw + dy, Math.min(Math.max(pitch + dp, -89), 89)];
    lastDrag = performance.now();
  };
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, [e.clientX, e.clientY]);
    down = pointers.size === 1 ? { t: performance.now(), x: e.clientX, y: e.clientY, moved: false } : null;
    pinch = null;
  });
  canvas.addEventListener("pointermove", (e) => {
    const prev = pointers.get(e.pointerId);
    if (!prev) return;
    pointers.set(e.pointerId, [e.clientX, e.clientY]);
    if (pointers.size === 2) {  // pinch: zoom by the change of the fingers' distance
      const [a, b] = [...pointers.values()];
      const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
      if (pinch) pb.zoom = Math.min(Math.max(pb.zoom * d / pinch, 0.5), 4);
      pinch = d;
      return;
    }
    const dx = e.clientX - prev[0], dy = e.clientY - prev[1];
    if (e.shiftKey) {  // the light, not the view (player/window.py: shift + drag)
      if (down) down.moved = true;
      onLight(dx, -dy);
      return;
    }
    if (down && Math.hypot(e.clientX - down.x, e.clientY - down.y) > 6) down.moved = true;
    if (down && down.moved) nudge(-0.3 * dx, 0.3 * dy);
  });
  const up = (e) => {
    pointers.delete(e.pointerId);
    if (down && !down.moved && performance.now() - down.t < 300 && e.type === "pointerup") pb.paused = !pb.paused;
    down = null;
    if (pointers.size < 2) pinch = null;
  };
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    pb.zoom = Math.min(Math.max(pb.zoom * 1.1 ** (-e.deltaY / 100), 0.5), 4);
  }, { passive: false });
  window.addEventListener("keydown", (e) => {
    const arrows = { ArrowLeft: [-2, 0], ArrowRight: [2, 0], ArrowUp: [0, 2], ArrowDown: [0, -2] };
    if (e.key === " ") pb.paused = !pb.paused;
    else if (e.key === "f") toggleFullscreen();
    else if (e.key === "m") pb.setMode(MODE_CYCLE[(MODE_CYCLE.indexOf(pb.mode) + 1) % MODE_CYCLE.length]);
    else if (arrows[e.key]) nudge(...arrows[e.key]);
    else return;
    e.preventDefault();
  });
  el("p4d-fullscreen").addEventListener("click", toggleFullscreen);
  // Free mode: back to the slow auto-orbit once the viewer lets go for a while.
  return () => {
    if (pb.mode === "free" && pb.manual !== null && pointers.size === 0 && performance.now() - lastDrag > IDLE_SECONDS * 1000) pb.manual = null;
  };
}
