"""Static file servers for the browser player's tests and bench: Python's own (no range
requests: each file is one 200 response, the page streams it) and one that answers single
byte-range requests with 206, as most static hosts do (the page fetches only what it needs)."""

from __future__ import annotations

import functools
import http.server
import os
import threading


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """http.server with single byte-range requests (206)."""

    def log_message(self, *args):
        pass

    def send_head(self):
        self.range_left = None
        rng = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not rng or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        a, b = rng.removeprefix("bytes=").split("-")
        start, end = int(a), min(int(b) if b else size - 1, size - 1)
        if start >= size:
            self.send_error(416)
            return None
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.range_left = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        if self.range_left is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(self.range_left))
        with self.server.lock:
            self.server.range_bytes += self.range_left


class PlainHandler(http.server.SimpleHTTPRequestHandler):
    """Python's own static server, quiet."""

    def log_message(self, *args):
        pass


def serve(root, ranges: bool) -> http.server.ThreadingHTTPServer:
    """A server of folder ``root`` on a free local port, running on a daemon thread
    (``.server_port``; ``.shutdown()`` stops it; ``.range_bytes`` counts the bytes it sent
    answering range requests)."""
    handler = RangeHandler if ranges else PlainHandler
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    srv.range_bytes, srv.lock = 0, threading.Lock()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
