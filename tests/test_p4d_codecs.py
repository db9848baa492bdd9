"""Tile codecs: lossless ones are exact, lossy ones stay within their measured PSNR, decoders check sizes first."""

import numpy as np
import pytest
import zstandard

from formats import codecs
from testkit.sample import portrait_tile


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.fixture(scope="module")
def tiles():
    rng = np.random.default_rng(3)
    rgb, alpha, depth = portrait_tile(48, 40, yaw=15, t=1.0, seed=3)
    return {
        "color": rgb,
        "alpha": alpha,
        "depth": codecs.quantize_depth(depth, 0.3, 1.0),
        "noise_color": rng.integers(0, 256, (17, 23, 3), dtype=np.uint8),  # odd sizes, incompressible
        "noise_depth": rng.integers(0, 65536, (17, 23), dtype=np.uint16),  # full 16-bit range
        "rgba": rng.integers(0, 256, (9, 11, 4), dtype=np.uint8),
    }


@pytest.mark.parametrize("name,codec", [
    ("color", "png"), ("color", "raw+zstd"), ("noise_color", "png"), ("noise_color", "raw+zstd"),
    ("alpha", "png"), ("alpha", "raw+zstd"), ("depth", "png"), ("depth", "raw+zstd"),
    ("noise_depth", "png"), ("noise_depth", "raw+zstd"), ("rgba", "png"), ("rgba", "raw+zstd"),
])
def test_lossless_codecs_round_trip_exactly(tiles, name, codec):
    a = tiles[name]
    out = codecs.decode(codecs.encode(a, codec), codec, a.shape, a.dtype)
    assert out.dtype == a.dtype and out.shape == a.shape
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize("name", ["alpha", "noise_color", "color"])
def test_webp_lossless_is_exact(tiles, name):
    a = tiles[name]
    out = codecs.decode(codecs.encode(a, "webp", codecs.WEBP_LOSSLESS), "webp", a.shape, a.dtype)
    np.testing.assert_array_equal(out, a)


# Bounds: the minimum over 20 portrait tiles (64x64, measured 2026-11 with opencv 5.0) minus ~1 dB.
# jpeg q50/q90: min 31.8 / 36.7 dB; webp q50/q90: min 33.0 / 38.4 dB.
@pytest.mark.parametrize("codec,quality,bound", [("jpeg", 50, 30.5), ("jpeg", 90, 35.5),
                                                 ("webp", 50, 32.0), ("webp", 90, 37.0)])
def test_lossy_codecs_stay_within_measured_psnr(codec, quality, bound):
    worst = np.inf
    for s in range(6):
        rgb, _, _ = portrait_tile(64, 64, yaw=10 * s - 25, t=s, seed=s)
        out = codecs.decode(codecs.encode(rgb, codec, quality), codec, rgb.shape, np.uint8)
        worst = min(worst, psnr(rgb, out))
    assert worst >= bound


def test_lossy_quality_trades_bytes_for_fidelity(tiles):
    rgb = tiles["color"]
    for codec in ("jpeg", "webp"):
        lo, hi = codecs.encode(rgb, codec, 30), codecs.encode(rgb, codec, 95)
        assert len(lo) < len(hi)
        assert psnr(rgb, codecs.decode(lo, codec, rgb.shape, np.uint8)) < \
            psnr(rgb, codecs.decode(hi, codec, rgb.shape, np.uint8))


def test_colour_channel_order_is_rgb(tiles):
    # Guards the BGR<->RGB swap: a pure red tile must come back red from every codec.
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 200
    for codec in codecs.CODECS:
        out = codecs.decode(codecs.encode(red, codec), codec, red.shape, np.uint8)
        assert out[..., 0].mean() > 190 and out[..., 1:].mean() < 10, codec


def test_encoding_is_deterministic(tiles):
    for codec in codecs.CODECS:
        assert codecs.encode(tiles["color"], codec) == codecs.encode(tiles["color"].copy(), codec)


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_decoder_rejects_wrong_size_before_decoding(tiles, codec):
    a = tiles["color"]
    data = codecs.encode(a, codec)
    with pytest.raises(codecs.CodecError):
        codecs.decode(data, codec, (a.shape[0] + 1, a.shape[1], 3), np.uint8)
    with pytest.raises(codecs.CodecError):
        codecs.decode(data, codec, (a.shape[0], a.shape[1] - 1, 3), np.uint8)


def test_png_bit_depth_and_channels_are_checked(tiles):
    with pytest.raises(codecs.CodecError, match="16-bit"):
        codecs.decode(codecs.encode(tiles["alpha"], "png"), "png", tiles["alpha"].shape, np.uint16)
    with pytest.raises(codecs.CodecError, match="type"):
        codecs.decode(codecs.encode(tiles["alpha"], "png"), "png", tiles["alpha"].shape + (3,), np.uint8)


def test_zstd_frame_must_declare_exact_size_and_end_the_chunk():
    raw = np.arange(64, dtype=np.uint8).reshape(8, 8)
    undeclared = zstandard.ZstdCompressor(write_content_size=False).compress(raw.tobytes())
    with pytest.raises(codecs.CodecError, match="declares -1"):
        codecs.decode(undeclared, "raw+zstd", (8, 8), np.uint8)
    good = codecs.encode(raw, "raw+zstd")
    with pytest.raises(codecs.CodecError, match="after its frame"):
        codecs.decode(good + good, "raw+zstd", (8, 8), np.uint8)
    with pytest.raises(codecs.CodecError):
        codecs.decode(good[:-3], "raw+zstd", (8, 8), np.uint8)
    with_checksum = zstandard.ZstdCompressor(write_checksum=True).compress(raw.tobytes())
    np.testing.assert_array_equal(codecs.decode(with_checksum, "raw+zstd", (8, 8), np.uint8), raw)


def test_garbage_is_a_codec_error():
    rng = np.random.default_rng(0)
    for codec in codecs.CODECS:
        for n in (0, 3, 40, 500):
            with pytest.raises(codecs.CodecError):
                codecs.decode(rng.integers(0, 256, n, dtype=np.uint8).tobytes(), codec, (8, 8, 3), np.uint8)


def test_depth_quantisation_error_is_half_a_step():
    near, far = 0.25, 1.75
    rng = np.random.default_rng(1)
    d = rng.uniform(near, far, (64, 64)).astype(np.float32)
    d[:4] = 0.0                       # empty
    d[4, :4] = (np.nan, -1.0, np.inf, 0.0)  # also empty
    q = codecs.quantize_depth(d, near, far)
    assert q.dtype == np.uint16
    assert (q[:5, :4] == 0).all() and (q[5:] > 0).all()
    back = codecs.dequantize_depth(q, near, far)
    step = (far - near) / 65534
    assert np.abs(back[5:] - d[5:]).max() <= step / 2 + 1e-6 * far
    assert (back[:4] == 0).all()
    # out of range clips to the ends
    np.testing.assert_array_equal(codecs.quantize_depth(np.array([0.1, 9.0], np.float32), near, far), [1, 65535])
    with pytest.raises(ValueError):
        codecs.quantize_depth(d, 1.0, 1.0)


def test_encoder_rejects_what_a_codec_cannot_hold(tiles):
    with pytest.raises(ValueError, match="8-bit"):
        codecs.encode(tiles["depth"], "jpeg")
    with pytest.raises(ValueError, match="unknown codec"):
        codecs.encode(tiles["color"], "gif")
    with pytest.raises(ValueError, match="quality"):
        codecs.encode(tiles["color"], "jpeg", 0)
