"""Typed configuration of the NeRFBlendShape model and its training, with named presets.

Stored in the checkpoint as a plain dict (``asdict``), read back with ``NerfConfig.from_dict``,
which ignores unknown keys and fills missing ones with defaults so old checkpoints keep loading.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass
class NerfConfig:
    # --- hash bases (paper Tab. 1: 16 levels, 2^14 entries, 4 features, 16 -> 1024) -------------
    levels: int = 12
    """hash levels L"""
    log2_table: int = 14
    """log2 of entries per level T"""
    features: int = 2
    """features per entry F"""
    base_res: int = 16
    """coarsest grid resolution"""
    finest_res: int = 512
    """finest grid resolution"""
    # --- MLPs -------------------------------------------------------------------------------------
    hidden: int = 64
    """width of both MLPs"""
    density_layers: int = 4
    """linear layers of the density MLP (paper: 4 x 64)"""
    geo_features: int = 15
    """geometry features the density MLP hands to the colour MLP"""
    color_layers: int = 3
    """linear layers of the colour MLP (input: geometry features + SH deg 4 of the view)"""
    density_scale: float = 64.0
    """sigma = density_scale * softplus(raw), per unit of the normalised [0, 1]^3 box"""
    # --- scene box, occupancy grid, marching -------------------------------------------------------
    bound: float = 0.3
    """half side of the head-frame box (metres) the field lives in, centred on the head"""
    grid_res: int = 64
    """occupancy grid resolution per axis (paper 128; 64 keeps the CPU update cheap, and a cell
    of 9 mm at bound 0.3 is still ~4 pixels at 128 px per head)"""
    march_steps: int = 192
    """fixed step = box diagonal / march_steps (normalised units; 192 at bound 0.3 = 5.4 mm, about
    2 pixels at 128 px over a 0.36 m view: colour is integrated, not point-sampled)"""
    occ_threshold: float = 0.01
    """a cell is occupied when a step through it would have alpha above this"""
    grid_decay: float = 0.95
    """EMA: grid = max(decay * grid, new density)"""
    grid_update_every: int = 16
    """steps between occupancy updates"""
    grid_warmup: int = 64
    """steps before the first occupancy update (everything counts as occupied until then)"""
    t_threshold: float = 1e-3
    """stop marching a ray once its transmittance falls below this"""
    # --- training ------------------------------------------------------------------------------------
    rays_per_batch: int = 1024
    """rays per step, spread over images_per_batch images"""
    images_per_batch: int = 4
    """images per step (paper batch size 4): each gets its own blended table"""
    face_fraction: float = 0.75
    """share of rays drawn from the (dilated) head mask; the rest uniform over the image"""
    lr: float = 1e-2
    """Adam learning rate (hash bases and MLPs), decayed exponentially to lr * lr_final"""
    lr_final: float = 0.1
    """final learning rate as a fraction of lr"""
    mask_fraction: float = 0.3
    """share of training (steps) with the mask loss on (paper: first 2 of 7 epochs)"""
    mask_weight: float = 1.0
    """weight of the mask loss while it is on"""
    perceptual_weight: float = 0.1
    """weight of the perceptual loss on patches (only with --perceptual-weights)"""
    patch_size: int = 32
    """side of the perceptual-loss patches"""
    checkpoint_every: float = 180.0
    """seconds between periodic checkpoints"""
    seed: int = 0
    """random seed"""

    def __post_init__(self) -> None:
        positive_ints = ("levels", "log2_table", "features", "base_res", "finest_res", "hidden", "density_layers",
                         "geo_features", "color_layers", "grid_res", "march_steps", "grid_update_every",
                         "rays_per_batch", "images_per_batch", "patch_size")
        for name in positive_ints:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"NerfConfig.{name} must be a positive integer, got {v!r}")
        if self.log2_table > 24:
            raise ValueError(f"NerfConfig.log2_table must be <= 24 (16M entries a level), got {self.log2_table}")
        if self.finest_res < self.base_res:
            raise ValueError(f"NerfConfig.finest_res ({self.finest_res}) must be >= base_res ({self.base_res})")
        if self.grid_warmup < 0:
            raise ValueError(f"NerfConfig.grid_warmup must be >= 0, got {self.grid_warmup}")
        for name in ("density_scale", "bound", "lr", "checkpoint_every"):
            if not getattr(self, name) > 0:
                raise ValueError(f"NerfConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("occ_threshold", "t_threshold"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"NerfConfig.{name} must be in (0, 1), got {getattr(self, name)!r}")
        for name in ("grid_decay", "face_fraction", "mask_fraction", "lr_final"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"NerfConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("mask_weight", "perceptual_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"NerfConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.rays_per_batch < self.images_per_batch:
            raise ValueError(f"NerfConfig.rays_per_batch ({self.rays_per_batch}) must be >= images_per_batch "
                             f"({self.images_per_batch}): every image of a step gets rays")

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "NerfConfig":
        known = {f.name for f in fields(NerfConfig)}
        return NerfConfig(**{k: v for k, v in d.items() if k in known})


PRESETS: dict[str, NerfConfig] = {
    "cpu": NerfConfig(),
    "paper": NerfConfig(levels=16, log2_table=14, features=4, base_res=16, finest_res=1024, grid_res=128,
                        march_steps=1024, rays_per_batch=4 * 32 * 32 * 4),
    "tiny": NerfConfig(levels=8, log2_table=12, features=2, base_res=8, finest_res=128, grid_res=32,
                       march_steps=192, rays_per_batch=1024, grid_warmup=32, grid_update_every=8),
}


def preset(name: str, **overrides) -> NerfConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return replace(PRESETS[name], **overrides)
