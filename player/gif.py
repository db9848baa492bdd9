"""A minimal animated-GIF writer (opencv cannot write GIF; no extra dependency).

Fixed 6 x 7 x 6 colour cube (252 colours, green gets the extra level), no dithering, LZW per the
GIF89a spec, looping forever. Good enough for previews; use mp4 for quality.
"""

from __future__ import annotations

import struct

import numpy as np

_LEVELS = (6, 7, 6)


def _palette() -> bytes:
    r, g, b = _LEVELS
    pal = [(round(i * 255 / (r - 1)), round(j * 255 / (g - 1)), round(k * 255 / (b - 1)))
           for i in range(r) for j in range(g) for k in range(b)]
    pal += [(0, 0, 0)] * (256 - len(pal))
    return bytes(c for p in pal for c in p)


def quantize(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> palette indices uint8 [H, W]."""
    x = rgb.astype(np.float32) / 255.0
    r, g, b = _LEVELS
    i = np.rint(x[..., 0] * (r - 1)).astype(np.int32)
    j = np.rint(x[..., 1] * (g - 1)).astype(np.int32)
    k = np.rint(x[..., 2] * (b - 1)).astype(np.int32)
    return ((i * g + j) * b + k).astype(np.uint8)


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
        f.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0) + _palette())
        f.write(b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop forever

    def add(self, rgb: np.ndarray) -> None:
        assert rgb.shape == (self.h, self.w, 3), rgb.shape
        self.f.write(b"\x21\xF9\x04\x00" + struct.pack("<H", self.delay) + b"\x00\x00")
        self.f.write(b"\x2C" + struct.pack("<HHHHB", 0, 0, self.w, self.h, 0) + b"\x08")
        data = lzw(quantize(rgb).tobytes())
        for i in range(0, len(data), 255):
            block = data[i:i + 255]
            self.f.write(bytes([len(block)]) + block)
        self.f.write(b"\x00")

    def close(self) -> None:
        self.f.write(b"\x3B")
