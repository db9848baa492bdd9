// Where a portrait's bytes come from: a URL read with HTTP range requests when the server
// answers them (only the parts a frame needs are fetched), else one streamed fetch whose bytes
// are served as they arrive (Python's http.server has no ranges); or bytes already in memory
// (the single-file page). Each source has ``size`` and ``read(offset, length) -> Uint8Array``.

const PROBE = 1 << 16;  // the first request: header and, usually, the preview

export class MemorySource {
  constructor(bytes) {
    this.bytes = bytes;
    this.size = bytes.length;
    this.mode = "memory";
  }
  async read(offset, length) {
    if (offset + length > this.size) throw new Error(`file ends inside [${offset}, ${offset + length})`);
    return this.bytes.subarray(offset, offset + length);
  }
}

export class HttpSource {
  /** onProgress(loaded, total): the streamed fetch's progress (not called in range mode). */
  constructor(url, onProgress = () => {}) {
    this.url = url;
    this.onProgress = onProgress;
    this.mode = null;
    this.size = null;
  }

  async open() {
    let res;
    try {
      res = await fetch(this.url, { headers: { Range: `bytes=0-${PROBE - 1}` } });
    } catch (e) {
      throw new Error(`cannot fetch ${this.url} (${e.message})`);
    }
    if (res.status === 206) {
      const m = /\/(\d+)\s*$/.exec(res.headers.get("Content-Range") || "");
      if (!m) throw new Error(`${this.url}: the server's Content-Range gives no file size`);
      this.mode = "range";
      this.size = Number(m[1]);
      this.head = new Uint8Array(await res.arrayBuffer());
      return this;
    }
    if (res.status === 416) {  // a range past the end: an empty file
      this.mode = "range";
      this.size = 0;
      this.head = new Uint8Array(0);
      return this;
    }
    if (!res.ok) throw new Error(`cannot fetch ${this.url} (HTTP ${res.status})`);
    this.mode = "stream";
    const len = res.headers.get("Content-Length");
    this.size = len !== null && !res.headers.get("Content-Encoding") ? Number(len) : null;
    this.buf = new Uint8Array(this.size ?? PROBE);
    this.loaded = 0;
    this.ended = false;
    this.waiters = [];
    this.failure = null;
    this._pump(res.body.getReader());
    if (this.size === null) await this._until(Infinity);  // no length: the header's check needs the end
    return this;
  }

  async _pump(reader) {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (this.loaded + value.length > this.buf.length) {
          const grown = new Uint8Array(Math.max(this.buf.length * 2, this.loaded + value.length));
          grown.set(this.buf.subarray(0, this.loaded));
          this.buf = grown;
        }
        this.buf.set(value, this.loaded);
        this.loaded += value.length;
        this.onProgress(this.loaded, this.size);
        this._wake();
      }
    } catch (e) {
      this.failure = e;
    }
    this.ended = true;
    if (this.size === null || this.loaded < this.size) this.size = this.loaded;
    this._wake();
  }

  _wake() {
    const still = [];
    for (const w of this.waiters) (this.loaded >= w.end || this.ended ? w.resolve() : still.push(w));
    this.waiters = still;
  }

  _until(end) {
    if (this.loaded >= end || this.ended) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ end, resolve }));
  }

  async read(offset, length) {
    const end = offset + length;
    if (this.mode === "range") {
      if (end <= this.head.length) return this.head.subarray(offset, end);
      if (end > this.size) throw new Error(`file ends inside [${offset}, ${end})`);
      const res = await fetch(this.url, { headers: { Range: `bytes=${offset}-${end - 1}` } });
      const data = new Uint8Array(await res.arrayBuffer());
      if (res.status !== 206 || data.length !== length) throw new Error(`the server did not return bytes [${offset}, ${end}) (HTTP ${res.status})`);
      return data;
    }
    await this._until(end);
    if (this.loaded < end) {
      throw new Error(this.failure ? `download failed (${this.failure.message})` : `file ends inside [${offset}, ${end})`);
    }
    return this.buf.subarray(offset, end);
  }
}
