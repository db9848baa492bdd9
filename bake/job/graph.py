"""The transition graph of a portrait: Video Textures (Schödl et al. 2000) as used by Kimura et al.

Pure numpy on precomputed frontal renders; k-means pose groups come from scikit-learn.

Pipeline (every step a function below):
    frontal renders --common_foreground--> mask
    mask + renders --frame_distances--> D [N, N]
    D --preserve_dynamics--> D' (binomial diagonal filter)
    D' --transition_costs--> C [N, N], C[i, j] = cost of showing j right after i
    C --future_costs--> F (Q-learning style iteration: a jump is only as good as where it leads)
    F --select_transitions--> backward jumps: local minima, best N, no dead end, connected
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Binomial weights over offsets -2..1 around (i, j): Video Textures' m = 2 filter.
_DYNAMICS_OFFSETS = np.array([-2, -1, 0, 1])
_DYNAMICS_WEIGHTS = np.array([1.0, 3.0, 3.0, 1.0]) / 8.0


@dataclass(frozen=True)
class GraphConfig:
    transitions: int = 19
    """number of backward transitions kept (Kimura et al. used 19)"""
    p_back: float = 0.3
    """probability of taking a backward transition when playback reaches its source"""
    min_jump_seconds: float = 0.5
    """backward jumps shorter than this make visible stutter loops, so they are never offered"""
    future_alpha: float = 0.99
    """discount of the future-cost iteration"""
    cost_power: float = 2.0
    """Video Textures' p: larger values favour many small costs over one big one"""

    def __post_init__(self) -> None:
        if self.transitions < 0:
            raise ValueError(f"transitions must be >= 0, got {self.transitions}")
        if not 0.0 <= self.p_back <= 1.0:
            raise ValueError(f"p_back must be a probability, got {self.p_back}")
        if not self.min_jump_seconds >= 0:
            raise ValueError(f"min_jump_seconds must be >= 0, got {self.min_jump_seconds}")
        if not 0.0 < self.future_alpha <= 1.0:
            raise ValueError(f"future_alpha must be in (0, 1], got {self.future_alpha}")
        if not self.cost_power > 0:
            raise ValueError(f"cost_power must be > 0, got {self.cost_power}")


@dataclass
class Graph:
    transitions: list[tuple[int, int, float, float]]  # (src, dst, prob, cost)
    distances: np.ndarray  # [N, N] frontal distance D (kept for forced-jump targets)


def common_foreground(alphas: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Pixels opaque in every frontal render (Kimura et al.'s common mask).

    alphas: [N, H, W] in [0, 1]. Returns bool [H, W]. Falls back to pixels opaque in at least half
    the renders when the intersection is nearly empty (a head that moves a lot in frontal view).
    """
    opaque = alphas > threshold
    mask = opaque.all(axis=0)
    if mask.sum() < 0.02 * mask.size:
        mask = opaque.mean(axis=0) >= 0.5
    return mask


def frame_distances(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RMS over the pixels inside ``mask`` of the colour difference (Euclidean over channels).

    images: [N, H, W, C] float; mask: bool [H, W]. Returns D [N, N], symmetric, zero diagonal.
    """
    x = images[:, mask].reshape(len(images), -1).astype(np.float64)
    sq = (x * x).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0) / max(int(mask.sum()), 1)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def preserve_dynamics(d: np.ndarray) -> np.ndarray:
    """D'[i, j] = Σ_k w_k D[i+k, j+k], binomial weights over k = -2..1, renormalised at the ends.

    Matching short windows rather than single frames keeps motion direction: a frame of an
    opening mouth does not match the same frame of a closing one.
    """
    n = len(d)
    out = np.zeros((n, n))
    wsum = np.zeros((n, n))
    for k, w in zip(_DYNAMICS_OFFSETS, _DYNAMICS_WEIGHTS):
        lo, hi = max(0, -k), min(n, n - k)  # rows/cols i with 0 <= i + k < n
        out[lo:hi, lo:hi] += w * d[lo + k:hi + k, lo + k:hi + k]
        wsum[lo:hi, lo:hi] += w
    return out / np.maximum(wsum, 1e-12)


def transition_costs(dp: np.ndarray) -> np.ndarray:
    """C[i, j]: cost of showing j right after i; C[i, i+1] = 0 is ordinary playback.

    For i < N-1, C[i, j] = D'[i+1, j]. The last keyframe has no successor; its cost of going to
    j is how well it stands in for j's predecessor, D'[N-1, j-1] (j = 0 uses D'[N-1, 0]).
    """
    c = np.empty_like(dp)
    c[:-1] = dp[1:]
    c[-1, 1:] = dp[-1, :-1]
    c[-1, 0] = dp[-1, 0]
    return c


def future_costs(c: np.ndarray, alpha: float = 0.99, power: float = 2.0, iters: int = 2000,
                 tol: float = 1e-9) -> np.ndarray:
    """F[i, j] = C[i, j]^p + alpha * min_k F[j, k] (Video Textures §3.3), iterated to a fixed point.

    A jump into a stretch that ends in a dead end inherits the cost of getting out of it.
    """
    base = c ** power
    f = base.copy()
    for _ in range(iters):
        f_new = base + alpha * f.min(axis=1)[None, :]
        if np.max(np.abs(f_new - f)) <= tol * (1.0 + np.max(np.abs(f))):
            return f_new
        f = f_new
    return f


def _local_minima(f: np.ndarray) -> np.ndarray:
    """bool [N, N]: entries no larger than any of their 8 neighbours."""
    padded = np.pad(f, 1, constant_values=np.inf)
    n, m = f.shape
    ok = np.ones_like(f, dtype=bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                ok &= f <= padded[1 + di:1 + di + n, 1 + dj:1 + dj + m]
    return ok


def reachable_floor(n: int, transitions: list[tuple[int, int]]) -> int:
    """Smallest keyframe reachable from the last one via playback plus these backward jumps.

    Playback reaches every later keyframe, so the graph is strongly connected iff this is 0.
    """
    floor = n - 1
    while True:
        lower = min((dst for src, dst in transitions if src >= floor), default=floor)
        if lower >= floor:
            return floor
        floor = lower


def select_transitions(f: np.ndarray, fps: float, cfg: GraphConfig) -> list[tuple[int, int, float, float]]:
    """Backward transitions (src, dst, prob, cost) from future costs F [N, N].

    Keeps local minima of F among backward jumps of at least ``min_jump_seconds``, the
    ``cfg.transitions`` cheapest of them, plus the cheapest way out of the last keyframe, plus
    whatever cheapest jumps are needed for every keyframe to reach every other. Probabilities: a
    source's jumps share ``p_back`` in proportion to exp(-F / sigma); the last keyframe's share 1.
    """
    n = len(f)
    if n < 2:
        return []
    gap = max(1, int(round(cfg.min_jump_seconds * fps)))
    src, dst = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    backward = dst <= src - gap + 1  # showing dst after src moves at least `gap` keyframes back
    cand = backward & _local_minima(f)
    order = np.argsort(f[cand], kind="stable")
    picked = list(zip(src[cand][order][:cfg.transitions].tolist(), dst[cand][order][:cfg.transitions].tolist()))

    last = n - 1
    if not any(s == last for s, _ in picked):
        row = np.where(backward[last], f[last], np.inf)
        picked.append((last, int(np.argmin(row))))
    # Connectivity: while the earliest keyframes cannot be reached, add the cheapest jump from the
    # reachable range to below it.
    while (floor := reachable_floor(n, picked)) > 0:
        sub = np.full_like(f, np.inf)
        sub[floor:, :floor] = f[floor:, :floor]
        sub[~backward] = np.inf
        if not np.isfinite(sub).any():
            break
        s, d = np.unravel_index(int(np.argmin(sub)), sub.shape)
        picked.append((int(s), int(d)))

    finite = f[backward & np.isfinite(f)]
    sigma = float(np.mean(finite)) * 0.1 if finite.size else 1.0
    sigma = max(sigma, 1e-12)
    out = []
    for s in sorted({s for s, _ in picked}):
        ds = sorted({d for ss, d in picked if ss == s})
        costs = np.array([f[s, d] for d in ds])
        w = np.exp(-(costs - costs.min()) / sigma)
        total = 1.0 if s == last else cfg.p_back
        for d, c, wi in zip(ds, costs, w / w.sum()):
            out.append((int(s), int(d), float(total * wi), float(c)))
    return out


def build_graph(images: np.ndarray, alphas: np.ndarray, fps: float, cfg: GraphConfig) -> Graph:
    """Frontal renders [N, H, W, 3] and alphas [N, H, W] -> transition graph."""
    mask = common_foreground(alphas)
    d = frame_distances(images, mask)
    f = future_costs(transition_costs(preserve_dynamics(d)), cfg.future_alpha, cfg.cost_power)
    return Graph(select_transitions(f, fps, cfg), d)


def direction_vectors(views: np.ndarray) -> np.ndarray:
    """[N, 2] (yaw, pitch) degrees -> [N, 3] unit view directions in the head frame."""
    y, p = np.radians(views[:, 0]), np.radians(views[:, 1])
    return np.stack([np.cos(p) * np.sin(y), np.sin(p), np.cos(p) * np.cos(y)], axis=1)


@dataclass
class PoseGroups:
    labels: np.ndarray  # [N] group of each keyframe, groups ordered by centre yaw
    centers: np.ndarray  # [G, 2] (yaw, pitch) degrees
    names: list[str]


def pose_groups(views: np.ndarray, k: int = 3, seed: int = 0) -> PoseGroups:
    """k-means on captured head directions (Kimura et al.: left / front / right).

    views: [N, 2] (yaw, pitch) degrees. Groups are renumbered by ascending centre yaw, so with
    k = 3 they read as the subject's right side, front, left side.
    """
    # scikit-learn takes about a second to import; only this function needs it, and the graph's
    # numpy steps (and their tests) should not pay for it.
    from sklearn.cluster import KMeans

    dirs = direction_vectors(views)
    k_eff = int(min(k, len(np.unique(np.round(dirs, 6), axis=0))))
    if k_eff <= 1:
        return PoseGroups(np.zeros(len(views), dtype=np.int64), views.mean(axis=0, keepdims=True), ["front"])
    km = KMeans(n_clusters=k_eff, n_init=10, random_state=seed).fit(dirs)
    centers_dir = km.cluster_centers_ / np.linalg.norm(km.cluster_centers_, axis=1, keepdims=True)
    centers = np.stack([np.degrees(np.arctan2(centers_dir[:, 0], centers_dir[:, 2])),
                        np.degrees(np.arcsin(np.clip(centers_dir[:, 1], -1, 1)))], axis=1)
    order = np.argsort(centers[:, 0], kind="stable")
    relabel = np.empty(k_eff, dtype=np.int64)
    relabel[order] = np.arange(k_eff)
    names = {1: ["front"], 2: ["right", "left"], 3: ["right", "front", "left"]}.get(
        k_eff, [f"group{g}" for g in range(k_eff)])
    return PoseGroups(relabel[km.labels_], centers[order], names)


def forced_targets(distances: np.ndarray, labels: np.ndarray, n_groups: int) -> np.ndarray:
    """forced[k, g]: the keyframe of group g most like keyframe k (-1 for k's own group) [N, G]."""
    n = len(labels)
    out = np.full((n, n_groups), -1, dtype=np.int64)
    for g in range(n_groups):
        members = np.flatnonzero(labels == g)
        if members.size == 0:
            continue
        best = members[np.argmin(distances[:, members], axis=1)]
        out[:, g] = np.where(labels == g, -1, best)
    return out
