"""Seeded mutation fuzzing of the .p4d reader (used by tests/test_p4d_fuzz.py and bench/fuzz_p4d.py).

Most random damage is caught by a crc, so half the mutators "forge" the file afterwards: they
recompute every crc (chunks, index, metadata, header) the way an attacker would, which drives the
bytes past the crc checks into the structure checks, msgpack and the image/zstd decoders.
The only acceptable outcomes are a clean read or ``P4DFormatError``.
"""

from __future__ import annotations

import os
import pathlib
import struct

import numpy as np

from formats import P4DFormatError, P4DReader
from formats.p4d import HEADER_FIELD, HEADER_FIELDS, HEADER_SIZE, INDEX_DTYPE, crc32, header_crc, pack_meta

# The header fields a mutation sets to an interesting value: every number but the header crc
# (forge() rewrites it anyway) and the reserved fields, which the fuzzer never touched: leaving them
# out keeps each seed's cases what they were (tests/test_p4d_hostile.py sets them directly).
MUTABLE_FIELDS = tuple(f.name for f in HEADER_FIELDS
                       if f.name not in ("magic", "header_crc") and "reserved" not in f.name)
INTERESTING = (0, 1, 2, 7, 8, 63, 64, 65, 127, 128, 255, 256, 4095, 4096, 65535, 65536, 1 << 20,
               (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 63), (1 << 64) - 1)


def header_get(data, name: str) -> int:
    f = HEADER_FIELD[name]
    return struct.unpack_from("<" + f.code, data, f.offset)[0]


def header_set(data: bytearray, name: str, value: int) -> None:
    """Store ``value`` modulo the field's width (the fuzzer's values may not fit)."""
    f = HEADER_FIELD[name]
    bits = 8 * struct.calcsize("<" + f.code)
    struct.pack_into("<" + f.code, data, f.offset, value % (1 << bits))


def _span(data, off_name: str, len_name: str) -> tuple[int, int] | None:
    if len(data) < HEADER_SIZE:
        return None
    off, length = header_get(data, off_name), header_get(data, len_name)
    return (off, length) if off + length <= len(data) else None


def with_meta(data: bytes, meta: dict) -> bytes:
    """``data`` (a whole file) with its metadata replaced by ``meta``, header and crcs forged to
    match: what a reader must judge on the metadata alone."""
    mb = pack_meta(meta)
    out = bytearray(data[:header_get(data, "meta_offset")]) + mb
    header_set(out, "meta_length", len(mb))
    header_set(out, "file_size", len(out))
    return bytes(forge(out))


def open_and_decode(folder: pathlib.Path, data: bytes) -> None:
    """Write ``data`` into ``folder`` and open it, decoding keyframe 0, view 0 of every kind."""
    p = pathlib.Path(folder) / "h.p4d"
    p.write_bytes(data)
    with P4DReader(p) as r:
        for kind in r.kinds:
            r.tile(0, 0, kind)


def forge(data: bytes | bytearray) -> bytearray:
    """Recompute every crc the header and index point at, as a malicious writer would."""
    out = bytearray(data)
    if len(out) < HEADER_SIZE:
        return out
    ispan = _span(out, "index_offset", "index_length")
    if ispan and ispan[1] % INDEX_DTYPE.itemsize == 0:
        index = np.frombuffer(bytes(out[ispan[0]:ispan[0] + ispan[1]]), INDEX_DTYPE).copy()
        for rec in index:
            o, n = int(rec["offset"]), int(rec["length"])
            if o + n <= len(out):
                rec["crc"] = crc32(out[o:o + n])
        out[ispan[0]:ispan[0] + ispan[1]] = index.tobytes()
        header_set(out, "index_crc", crc32(out[ispan[0]:ispan[0] + ispan[1]]))
    pspan = _span(out, "preview_offset", "preview_length")
    if pspan and pspan[1]:
        header_set(out, "preview_crc", crc32(out[pspan[0]:pspan[0] + pspan[1]]))
    mspan = _span(out, "meta_offset", "meta_length")
    if mspan:
        header_set(out, "meta_crc", crc32(out[mspan[0]:mspan[0] + mspan[1]]))
    header_set(out, "header_crc", header_crc(out))
    return out


def _regions(data) -> list[tuple[int, int]]:
    """[start, end) of header, chunk area, index and metadata (as the header declares them)."""
    n = len(data)
    if n < HEADER_SIZE:
        return [(0, n)]
    io, ml = header_get(data, "index_offset"), header_get(data, "meta_length")
    mo = header_get(data, "meta_offset")
    cuts = sorted({0, HEADER_SIZE, min(io, n), min(mo, n), min(mo + ml, n), n})
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random mutation of ``data`` (deterministic for a given rng state)."""
    out = bytearray(data)
    op = int(rng.integers(0, 9))
    lo, hi = _regions(out)[int(rng.integers(0, len(_regions(out))))]
    if op in (0, 1):  # bit flips inside one region; op 1 then forges the crcs
        for _ in range(int(rng.integers(1, 5))):
            i = int(rng.integers(lo, hi))
            out[i] ^= 1 << int(rng.integers(0, 8))
        return bytes(forge(out) if op == 1 else out)
    if op == 2:  # a header field set to an interesting value, crcs forged
        name = MUTABLE_FIELDS[int(rng.integers(0, len(MUTABLE_FIELDS)))]
        v = INTERESTING[int(rng.integers(0, len(INTERESTING)))]
        if rng.random() < 0.3:
            v = header_get(out, name) + int(rng.integers(-3, 4))
        header_set(out, name, v)
        return bytes(forge(out))
    if op == 3:  # an index record field set to an interesting value (or swapped), crcs forged
        span = _span(out, "index_offset", "index_length")
        if span and span[1] >= INDEX_DTYPE.itemsize and span[1] % INDEX_DTYPE.itemsize == 0:
            index = np.frombuffer(bytes(out[span[0]:span[0] + span[1]]), INDEX_DTYPE).copy()
            i, j = (int(x) for x in rng.integers(0, len(index), 2))
            field = INDEX_DTYPE.names[int(rng.integers(0, len(INDEX_DTYPE.names)))]
            if rng.random() < 0.3:
                index[[i, j]] = index[[j, i]]
            elif rng.random() < 0.5:
                index[field][i] = index[field][j]
            else:
                bits = 8 * index.dtype[field].itemsize
                index[field][i] = INTERESTING[int(rng.integers(0, len(INTERESTING)))] % (1 << bits)
            out[span[0]:span[0] + span[1]] = index.tobytes()
        return bytes(forge(out))
    if op == 4:  # truncate, sometimes with the declared file size patched to match
        cut = int(rng.integers(0, len(out)))
        out = out[:cut]
        if cut >= HEADER_SIZE and rng.random() < 0.5:
            header_set(out, "file_size", cut)
            out = forge(out)
        return bytes(out)
    if op == 5:  # insert or delete a block, crcs forged
        i = int(rng.integers(0, len(out)))
        n = int(rng.integers(1, 200))
        if rng.random() < 0.5:
            out[i:i] = bytes(rng.integers(0, 256, n, dtype=np.uint8))
        else:
            del out[i:i + n]
        return bytes(forge(out))
    if op == 6:  # random bytes over a region span, crcs forged
        a = int(rng.integers(lo, hi))
        b = min(hi, a + int(rng.integers(1, 64)))
        out[a:b] = bytes(rng.integers(0, 256, b - a, dtype=np.uint8))
        return bytes(forge(out))
    if op == 7:  # copy one region's bytes over another spot, crcs forged
        a = int(rng.integers(0, len(out)))
        b = int(rng.integers(0, len(out)))
        n = int(rng.integers(1, 256))
        chunk = out[a:a + n]
        out[b:b + len(chunk)] = chunk
        return bytes(forge(out))
    # op 8: pure random bytes, sometimes with the real magic in front
    n = int(rng.integers(0, 2 * HEADER_SIZE))
    junk = bytearray(rng.integers(0, 256, n, dtype=np.uint8))
    if rng.random() < 0.5:
        junk = bytearray(out[:8]) + junk
    return bytes(junk)


def read_everything(path) -> str:
    """Open ``path`` and touch every part; 'ok', 'rejected' or 'problems'. Anything else propagates."""
    try:
        with P4DReader(path) as r:
            r.preview()
            for k in range(r.n_keyframes):
                for v in range(r.n_views):
                    for kind in r.kinds:
                        r.tile(k, v, kind)
            return "problems" if r.verify(decode=False) else "ok"
    except P4DFormatError:
        return "rejected"


def fuzz(seeds_files: list[bytes], n_cases: int, seed: int, workdir) -> dict:
    """Run ``n_cases`` mutations; returns outcome counts. Raises with the case number on a bad outcome."""
    rng = np.random.default_rng(seed)
    path = pathlib.Path(workdir) / f"fuzz_{os.getpid()}.p4d"
    counts = {"ok": 0, "rejected": 0, "problems": 0}
    # Rewrite one file in place: re-creating it per case costs milliseconds on some filesystems.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for case in range(n_cases):
            base = seeds_files[case % len(seeds_files)]
            data = mutate(base, rng)
            os.ftruncate(fd, len(data))
            os.pwrite(fd, data, 0)
            try:
                counts[read_everything(path)] += 1
            except Exception as e:
                raise AssertionError(f"fuzz case {case} (seed {seed}) raised {type(e).__name__}: {e}; "
                                     f"reproduce with testkit.fuzz.fuzz(..., seed={seed})") from e
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return counts
