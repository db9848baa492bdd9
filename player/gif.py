"""A minimal animated-GIF writer (opencv cannot write GIF; no extra dependency).

Per-frame palette (local colour table): the 256 most frequent colours at 5 bits per channel,
every 5-bit bin mapped to its nearest palette colour; no dithering; LZW per the GIF89a spec;
loops forever. Good enough for previews; use mp4 for quality.
"""

from __future__ import annotations

import struct

import numpy as np

def quantize(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [H, W, 3] -> (palette indices uint8 [H, W], palette uint8 [256, 3])."""
    q = (rgb >> 3).astype(np.int32)
    bins = (q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]
    counts = np.bincount(bins.ravel(), minlength=1 << 15)
    top = np.argsort(-counts, kind="stable")[:256]
    top = top[counts[top] > 0]
    centres = lambda b: np.stack([(b >> 10) & 31, (b >> 5) & 31, b & 31], -1) * 8 + 4
    pal = centres(top).astype(np.float32)
    used = np.nonzero(counts)[0]
    d = ((centres(used)[:, None, :].astype(np.float32) - pal[None]) ** 2).sum(-1)
    lut = np.zeros(1 << 15, np.uint8)
    lut[used] = np.argmin(d, axis=1)
    palette = np.zeros((256, 3), np.uint8)
    palette[:len(top)] = np.clip(pal, 0, 255).astype(np.uint8)
    return lut[bins], palette


def lzw(indices: bytes, min_code_size: int = 8) -> bytes:
    """GIF LZW: variable-width codes (up to 12 bits), clear code when the table is full."""
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    out = bytearray()
    acc = nbits = 0

    def put(code: int, width: int) -> None:
        nonlocal acc, nbits
        acc |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8

    table = {bytes([i]): i for i in range(clear)}
    nxt, width = end + 1, min_code_size + 1
    put(clear, width)
    w = b""
    for byte in indices:
        c = bytes([byte])
        wc = w + c
        if wc in table:
            w = wc
            continue
        put(table[w], width)
        if nxt < 4096:
            table[wc] = nxt
            nxt += 1
            if nxt > (1 << width) and width < 12:
                width += 1
        else:
            put(clear, width)
            table = {bytes([i]): i for i in range(clear)}
            nxt, width = end + 1, min_code_size + 1
        w = c
    if w:
        put(table[w], width)
    put(end, width)
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


class GifWriter:
    def __init__(self, f, width: int, height: int, fps: float):
        self.f, self.w, self.h = f, width, height
        self.delay = max(2, int(round(100.0 / fps)))  # centiseconds; browsers clamp < 2
        f.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0x70, 0, 0))  # no global table
        f.write(b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop forever

    def add(self, rgb: np.ndarray) -> None:
        assert rgb.shape == (self.h, self.w, 3), rgb.shape
        self.f.write(b"\x21\xF9\x04\x00" + struct.pack("<H", self.delay) + b"\x00\x00")
        idx, palette = quantize(rgb)
        # image descriptor with a 256-entry local colour table
        self.f.write(b"\x2C" + struct.pack("<HHHHB", 0, 0, self.w, self.h, 0x87) + palette.tobytes() + b"\x08")
        data = lzw(idx.tobytes())
        for i in range(0, len(data), 255):
            block = data[i:i + 255]
            self.f.write(bytes([len(block)]) + block)
        self.f.write(b"\x00")

    def close(self) -> None:
        self.f.write(b"\x3B")
