"""``BakeConfig``: every option of a bake, checked when it is built (in Python or from the CLI)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bake.job.graph import GraphConfig
from bake.job.views import check_range, check_views
from formats.p4d import MAX_CHAIN  # the longest chain a file may declare

COLOR_CODECS = ("jpeg", "webp", "png", "raw+zstd")
DEPTH_SCALES = (1, 2, 4, 8)  # the .p4d stores depth at 1/s resolution for these s only
DEPTH_BITS = (8, 16)  # bits per stored depth sample (8: format 1.1)
NORMAL_SCALES = (0, 1, 2, 4, 8)  # normal tiles at 1/s resolution (format 1.2); 0 = none


@dataclass(frozen=True)
class BakeConfig:
    views: tuple[int, int] = (7, 3)
    """yaw x pitch count of the view grid"""
    yaw_range: tuple[float, float] | None = None
    """degrees; None = the range the capture saw"""
    pitch_range: tuple[float, float] | None = None
    size: int = 256
    """tile width = height in pixels"""
    fps: float = 12.5
    """keyframe rate"""
    codec: str = "webp"
    """colour codec; webp reaches jpeg's PSNR at about 1/3 of the bytes on these tiles"""
    quality: int | None = None
    """colour quality 1-100; None = auto_quality(size, chain)"""
    residual_quality: int | None = None
    """colour quality 1-100 of a chain's predicted tiles (their differences to the keyframe before);
    None = auto_quality(size, chain, predicted=True)"""
    depth_scale: int = 4
    """depth tiles at 1/depth_scale resolution: the player warps with a coarse lattice anyway, and
    full-resolution 16-bit depth would cost ~10x the colour tile"""
    depth_bits: int = 8
    """bits per stored depth sample: 8 = 255 steps over the 0.6 m depth range (2.4 mm, RMS 0.7 mm;
    the warp cannot show the difference) at a quarter of 16-bit's bytes; 16 = 0.01 mm steps"""
    normal_scale: int = 4
    """normal tiles (format 1.2, what the player relights with) at 1/normal_scale resolution;
    0 = no normals (the file cannot be relit, and stays 1.0/1.1). bench/relight_quality.py at
    256², relit PSNR against the truth / KB of normals per tile (colour: 4.0): 1/1 33.7 dB / 19.2,
    1/2 33.1 / 8.1, 1/4 31.7 / 3.5, 1/8 29.7 / 1.4 (unrelit 19.0): 1/4 meets the 30 dB target
    at less than the colour's bytes, and a learned bake's depth is stored at 1/4 anyway"""
    chain: int = 10
    """chains of tiles (format 1.3): each view's keyframe k with k % chain != 0 stores its difference
    to keyframe k - 1 as the player decodes it, so a decode needs at most ``chain`` chunks; 1 = every
    tile whole (a file of format 1.2 or older). 20 s of the synthetic head at the defaults
    (bench/chain_bench.py, p4d compare against the lossless bake): 1: 40.6 MB (colour webp q80,
    35.8 dB mean, 35.0 dB worst tile); 8: 15.1 MB; 10: 13.9 MB (colour 92/85, 38.7 dB, 36.2 dB)"""
    graph: GraphConfig = field(default_factory=GraphConfig)
    groups: int = 3
    """pose groups (k-means k)"""
    morph_seconds: float = 0.2
    """crossfade length of a jump in the player"""
    pose_switch_prob: float = 0.03
    seed: int = 0
    """seed of k-means"""
    graph_size: int = 64
    """frontal render size for the similarity graph"""

    def __post_init__(self) -> None:
        check_views(self.views)
        if self.yaw_range is not None:
            check_range(*self.yaw_range, what="yaw range")
        if self.pitch_range is not None:
            check_range(*self.pitch_range, what="pitch range")
        if not 16 <= self.size <= 2048:
            raise ValueError(f"size must be between 16 and 2048, got {self.size}")
        if not (math.isfinite(self.fps) and 0 < self.fps <= 120):
            raise ValueError(f"fps must be in (0, 120], got {self.fps}")
        if self.codec not in COLOR_CODECS:
            raise ValueError(f"unknown colour codec {self.codec!r} ({', '.join(COLOR_CODECS)})")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be between 1 and 100, got {self.quality}")
        if self.residual_quality is not None and not 1 <= self.residual_quality <= 100:
            raise ValueError(f"residual_quality must be between 1 and 100, got {self.residual_quality}")
        if isinstance(self.depth_scale, bool) or self.depth_scale not in DEPTH_SCALES:
            raise ValueError(f"depth_scale must be one of {DEPTH_SCALES}, got {self.depth_scale!r}")
        if isinstance(self.depth_bits, bool) or self.depth_bits not in DEPTH_BITS:
            raise ValueError(f"depth_bits must be one of {DEPTH_BITS}, got {self.depth_bits!r}")
        if isinstance(self.normal_scale, bool) or self.normal_scale not in NORMAL_SCALES:
            raise ValueError(f"normal_scale must be one of {NORMAL_SCALES}, got {self.normal_scale!r}")
        if isinstance(self.chain, bool) or not isinstance(self.chain, int) or not 1 <= self.chain <= MAX_CHAIN:
            raise ValueError(f"chain must be 1 (no chains) or 2..{MAX_CHAIN}, got {self.chain!r}")
        if not isinstance(self.graph, GraphConfig):
            raise ValueError(f"graph must be a GraphConfig, got {type(self.graph).__name__}")
        if self.groups < 1:
            raise ValueError(f"groups must be >= 1, got {self.groups}")
        if not self.morph_seconds >= 0:
            raise ValueError(f"morph_seconds must be >= 0, got {self.morph_seconds}")
        if not 0.0 <= self.pose_switch_prob <= 1.0:
            raise ValueError(f"pose_switch_prob must be a probability, got {self.pose_switch_prob}")
        if not 8 <= self.graph_size <= 1024:
            raise ValueError(f"graph_size must be between 8 and 1024, got {self.graph_size}")


def auto_quality(size: int, chain: int = 1, predicted: bool = False) -> int:
    """Default colour quality: small tiles pack more detail per pixel, so they need more bits to
    keep decoded tiles >= 38 dB from the render (webp on the synthetic head: q80 gives a minimum
    of 39.3 dB at 256², but 36.9 dB at 128²; q90 gives 39.2 dB at 128²).

    Chains (``chain`` > 1) spend the bytes they save on quality: intra tiles at 92 and the
    predicted ones (``predicted``) at 85 from 192 px (the 20 s synthetic head at 256², chains of
    10, against the lossless bake inside the alpha: 38.7 dB mean, 36.2 dB worst tile, 6.2 MB of
    colour, against q80 whole tiles' 35.8 / 35.0 dB in 15.5 MB; 91/84 in chains of 8: 38.5 /
    35.3 dB), 90 for both below (the whole tiles' setting)."""
    if chain > 1 and size >= 192:
        return 85 if predicted else 92
    return 80 if size >= 192 else 90
