"""Seeded mutation fuzzing of the reader: >= 10,000 cases; only a clean read or P4DFormatError is allowed."""

import pytest

from formats import P4DReader
from testkit.fuzz import fuzz
from testkit.sample import write_sample

ALL_RAW = {"color": "raw+zstd", "alpha": "raw+zstd", "depth": "raw+zstd"}
KINDS4 = ("color", "alpha", "depth", "normal")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    d = tmp_path_factory.mktemp("seeds")
    # Tiny tiles keep a case well under a millisecond; together the seeds cover every codec,
    # a file with and without preview, 1-4 kinds, a 2-D view grid, depth_scale 1, 2 and 8,
    # 8-bit and 16-bit depth, normal tiles (format 1.2) and chained tiles (format 1.3).
    return [
        write_sample(d / "a.p4d", n_keyframes=2, yaws=(0.0, 10.0), size=(8, 8)).read_bytes(),
        write_sample(d / "b.p4d", n_keyframes=2, yaws=(0.0,), pitches=(0.0, 5.0), size=(8, 12), codecs=ALL_RAW,
                     preview=False).read_bytes(),
        write_sample(d / "c.p4d", n_keyframes=3, yaws=(0.0,), size=(8, 8), kinds=("color", "alpha"),
                     codecs={"color": "webp", "alpha": "webp"}).read_bytes(),
        write_sample(d / "d.p4d", n_keyframes=2, yaws=(0.0,), size=(8, 8), kinds=("color",),
                     codecs={"color": "png"}).read_bytes(),
        # depth stored downscaled (8x12 tile -> 4x6 depth at s=2, 13x9 -> 2x2 at s=8, non-divisible)
        write_sample(d / "e.p4d", n_keyframes=2, yaws=(0.0, 10.0), size=(8, 12), depth_scale=2).read_bytes(),
        write_sample(d / "f.p4d", n_keyframes=2, yaws=(0.0,), size=(13, 9), codecs=ALL_RAW, preview=False,
                     depth_scale=8).read_bytes(),
        # 8-bit depth (format 1.1) in webp, and raw at s=2
        write_sample(d / "g.p4d", n_keyframes=2, yaws=(0.0, 10.0), size=(8, 8), depth_bits=8,
                     codecs={"color": "jpeg", "alpha": "png", "depth": "webp"}).read_bytes(),
        write_sample(d / "h.p4d", n_keyframes=2, yaws=(0.0,), size=(8, 12), codecs=ALL_RAW, depth_scale=2,
                     depth_bits=8).read_bytes(),
        # normal tiles and the captured light (format 1.2): webp at 1/2 (non-divisible), raw at 1/1
        write_sample(d / "i.p4d", n_keyframes=2, yaws=(0.0, 10.0), size=(9, 8), kinds=KINDS4,
                     normal_scale=2).read_bytes(),
        write_sample(d / "j.p4d", n_keyframes=2, yaws=(0.0,), size=(8, 8), kinds=KINDS4,
                     codecs={**ALL_RAW, "normal": "raw+zstd"}, preview=False).read_bytes(),
        # chained tiles (format 1.3): lossy webp colour over 8-bit webp depth, and lossless raw chains
        write_sample(d / "k.p4d", n_keyframes=3, yaws=(0.0, 10.0), size=(8, 8), kinds=KINDS4, depth_bits=8,
                     codecs={"color": "webp", "alpha": "webp", "depth": "webp", "normal": "webp"},
                     chain=2).read_bytes(),
        write_sample(d / "l.p4d", n_keyframes=3, yaws=(0.0,), size=(8, 8), codecs=ALL_RAW, chain=3,
                     preview=False).read_bytes(),
    ]


def test_ten_thousand_mutations(seeds, tmp_path):
    counts = fuzz(seeds, 10_000, seed=20261122, workdir=tmp_path)
    assert sum(counts.values()) == 10_000
    # Not vacuous: many mutants get past every structure check into the decoders, most are refused.
    assert counts["ok"] > 300 and counts["rejected"] > 5000


def test_fuzzer_reports_an_unexpected_exception(seeds, tmp_path, monkeypatch):
    def broken(self, keyframe, view, kind):
        raise TypeError("boom")
    monkeypatch.setattr(P4DReader, "tile", broken)
    with pytest.raises(AssertionError, match="TypeError: boom"):
        fuzz(seeds[:1], 50, seed=1, workdir=tmp_path)
