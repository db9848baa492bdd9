"""The transition graph on generated sequences with known structure."""

import numpy as np
import pytest

from bake.job.graph import (GraphConfig, build_graph, common_foreground, forced_targets, frame_distances,
                        future_costs, pose_groups, preserve_dynamics, reachable_floor, transition_costs)


def naive_preserve_dynamics(d):
    n = len(d)
    offs, ws = [-2, -1, 0, 1], [1, 3, 3, 1]
    out = np.zeros_like(d)
    for i in range(n):
        for j in range(n):
            num = den = 0.0
            for k, w in zip(offs, ws):
                if 0 <= i + k < n and 0 <= j + k < n:
                    num += w * d[i + k, j + k]
                    den += w
            out[i, j] = num / den
    return out


def periodic_sequence(n=150, fps=12.5, hz=0.6, seed=0):
    """Frames of a 'mouth' that opens and closes at ``hz``: frames one period apart look alike."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fps
    level = 0.5 + 0.4 * np.sin(2 * np.pi * hz * t)
    imgs = np.broadcast_to(level[:, None, None, None], (n, 12, 12, 3)).copy()
    imgs += rng.normal(0, 0.01, imgs.shape)
    return imgs, np.ones((n, 12, 12)), fps / hz


def successors(n, transitions):
    out = {i: {i + 1} if i + 1 < n else set() for i in range(n)}
    for s, d, _, _ in transitions:
        out[s].add(d)
    return out


def all_reachable(n, transitions):
    nxt = successors(n, transitions)
    for start in range(n):
        seen, stack = {start}, [start]
        while stack:
            for j in nxt[stack.pop()]:
                if j not in seen:
                    seen.add(j)
                    stack.append(j)
        if len(seen) != n:
            return False
    return True


def test_preserve_dynamics_matches_naive():
    d = np.random.default_rng(1).random((23, 23))
    d = d + d.T
    np.testing.assert_allclose(preserve_dynamics(d), naive_preserve_dynamics(d), rtol=1e-12)


def test_frame_distances_is_masked_rms():
    rng = np.random.default_rng(2)
    imgs = rng.random((5, 8, 8, 3))
    mask = np.zeros((8, 8), bool)
    mask[2:6, 1:7] = True
    d = frame_distances(imgs, mask)
    want = np.sqrt(((imgs[1][mask] - imgs[3][mask]) ** 2).sum(-1).mean())
    assert d[1, 3] == pytest.approx(want, rel=1e-9)
    np.testing.assert_allclose(d, d.T)
    assert np.all(np.diag(d) == 0)
    # pixels outside the mask do not count
    imgs2 = imgs.copy()
    imgs2[:, ~mask] = rng.random((5, (~mask).sum(), 3))
    np.testing.assert_allclose(frame_distances(imgs2, mask), d, atol=1e-12)


def test_common_foreground_is_the_intersection():
    a = np.zeros((3, 10, 10))
    a[0, 1:9, 1:9] = 1
    a[1, 2:10, 0:8] = 1
    a[2, 0:7, 2:10] = 1
    m = common_foreground(a)
    assert m.sum() == 5 * 6 and m[2:7, 2:8].all()


def test_transitions_follow_the_period_and_leave_no_dead_end():
    imgs, alphas, period = periodic_sequence()
    n = len(imgs)
    cfg = GraphConfig(transitions=19, p_back=0.3)
    g = build_graph(imgs, alphas, 12.5, cfg)
    assert len(g.transitions) >= 19
    # backward jumps land about a whole number of periods back (the motion looks continuous)
    for s, d, _, _ in g.transitions:
        assert d <= s - 5  # min_jump_seconds * fps - 1
        back = (s + 1 - d) / period
        assert abs(back - round(back)) < 0.2, (s, d, back)
    assert any(s == n - 1 for s, _, _, _ in g.transitions)
    assert all_reachable(n, g.transitions)
    by_src = {}
    for s, _, p, _ in g.transitions:
        by_src[s] = by_src.get(s, 0.0) + p
    for s, total in by_src.items():
        assert total == pytest.approx(1.0 if s == n - 1 else 0.3)


def test_connectivity_repair_reaches_a_unique_opening():
    # The first 30 frames look like nothing else: only the repair step can make them reachable.
    imgs, alphas, _ = periodic_sequence(n=120)
    imgs[:30] = np.linspace(0, 1, 30)[:, None, None, None] * np.array([1.0, 0.0, 0.0]) + 2.0
    g = build_graph(imgs, alphas, 12.5, GraphConfig(transitions=5))
    assert reachable_floor(len(imgs), [(s, d) for s, d, _, _ in g.transitions]) == 0
    assert all_reachable(len(imgs), g.transitions)


def test_future_cost_avoids_jumping_into_a_dead_end():
    # Frame 9 is a dead end: the only way out of 9 is expensive. Jumping to 8 (which leads into it)
    # must then cost more than its immediate cost suggests.
    n = 10
    c = np.full((n, n), 1.0)
    for i in range(n - 1):
        c[i, i + 1] = 0.0
    c[n - 1, :] = 5.0
    f = future_costs(c, alpha=0.9, power=1.0)
    assert f[0, 8] > f[0, 2] > c[0, 2]
    # fixed point
    np.testing.assert_allclose(f, c + 0.9 * f.min(axis=1)[None, :], atol=1e-6)


def test_transition_costs_shift():
    dp = np.arange(16.0).reshape(4, 4)
    c = transition_costs(dp)
    assert c[0, 2] == dp[1, 2] and c[2, 1] == dp[3, 1]
    assert c[3, 2] == dp[3, 1] and c[3, 0] == dp[3, 0]


def test_pose_groups_left_front_right_and_forced_targets():
    rng = np.random.default_rng(3)
    yaws = np.concatenate([rng.normal(-30, 2, 20), rng.normal(0, 2, 25), rng.normal(30, 2, 15)])
    views = np.stack([yaws, rng.normal(0, 3, 60)], axis=1)
    perm = rng.permutation(60)
    views = views[perm]
    g = pose_groups(views, 3, seed=0)
    assert g.names == ["right", "front", "left"]
    assert np.bincount(g.labels).tolist() == [20, 25, 15]
    assert g.centers[0, 0] < -20 and abs(g.centers[1, 0]) < 5 and g.centers[2, 0] > 20
    assert np.array_equal(g.labels, pose_groups(views, 3, seed=0).labels)

    d = np.abs(views[:, :1] - views[:, :1].T) + 0.01 * rng.random((60, 60))
    forced = forced_targets(d, g.labels, 3)
    for k in range(60):
        for grp in range(3):
            if g.labels[k] == grp:
                assert forced[k, grp] == -1
            else:
                members = np.flatnonzero(g.labels == grp)
                assert forced[k, grp] == members[np.argmin(d[k, members])]


def test_pose_groups_degenerate_capture_has_one_group():
    g = pose_groups(np.zeros((10, 2)), 3)
    assert g.names == ["front"] and set(g.labels.tolist()) == {0}
