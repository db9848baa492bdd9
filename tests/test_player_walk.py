"""The graph walker and the capture replay: long seeded walks against the baked graph."""

import math

import numpy as np
import pytest

from player.motion import CaptureReplay
from player.walker import Walker
from testkit.sample import sample_meta

K, G = 30, 3
BACK = {9: (2, 0.3), 19: (11, 0.3), 24: (5, 0.15)}  # src: (dst, prob)


def graph_meta(morph=0.2, fps=12.5):
    meta = sample_meta(K, n_groups=G)
    group = [k * G // K for k in range(K)]
    first = [group.index(g) for g in range(G)]
    meta["keyframes"]["fps"] = fps
    meta["keyframes"]["pose_group"] = group
    meta["graph"]["transitions"] = [[K - 1, 0, 0.7, 1.0], [K - 1, 10, 0.3, 1.0]] + \
        [[s, d, p, 1.0] for s, (d, p) in BACK.items()]
    meta["graph"]["forced"] = [[-1 if group[k] == g else first[g] + (k % 5) for g in range(G)] for k in range(K)]
    meta["graph"]["morph_seconds"] = morph
    return meta


def test_long_walk_visits_everything_and_jumps_at_baked_rates():
    meta = graph_meta()
    w = Walker(meta, seed=7, start_group=0)
    jumps = []
    w.push_handlers(on_jump=lambda kind, s, d: jumps.append((kind, s, d)))
    dt = 1 / 60
    for _ in range(int(30 * 60 / dt) // 30):  # one simulated minute
        w.step(dt, 0)
    # every keyframe shown; the group never changed, so nothing forced
    assert (w.stats.visits > 0).all(), np.where(w.stats.visits == 0)
    assert not w.stats.forced and all(k == "transition" for k, _, _ in jumps)
    for src, (dst, p) in BACK.items():
        n = w.stats.offers.get(src, 0)
        rate = w.stats.taken.get((src, dst), 0) / n
        assert n > 20, (src, n)
        assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / n) + 0.02, (src, rate, p, n)
    # the last keyframe always jumps, split by its probabilities
    n_last = w.stats.offers[K - 1]
    assert w.stats.taken.get((K - 1, 0), 0) + w.stats.taken.get((K - 1, 10), 0) == n_last


def test_same_seed_same_walk_other_seed_other_walk():
    def run(seed):
        w = Walker(graph_meta(), seed=seed, start_group=0)
        ks = []
        for _ in range(3000):
            w.step(1 / 60, 0)
            ks.append(w.main.k)
        return ks
    assert run(3) == run(3)
    assert run(3) != run(4)


def test_forced_jumps_only_on_group_change_and_land_in_that_group():
    meta = graph_meta()
    group = meta["keyframes"]["pose_group"]
    w = Walker(meta, seed=1, start_group=0)
    rng = np.random.default_rng(0)
    dt, t, g = 1 / 60, 0.0, 0
    changes = []
    for i in range(20000):
        if rng.random() < 0.004:  # the viewpoint wanders into another group now and then
            g = int(rng.integers(G))
            if g != w.group:
                changes.append((t, g))
        w.step(dt, g)
        t += dt
    assert len(changes) > 20 and w.stats.forced
    for tf, src, dst, gf in w.stats.forced:
        # a forced jump follows a change into gf, at once or right after a running crossfade
        before = [c for c in changes if c[0] <= tf + 1e-9]
        assert before and before[-1][1] == gf and tf - before[-1][0] <= w.morph_seconds + 2 * dt, (tf, before[-1:])
        assert group[dst] == gf and group[src] != gf
    assert len(w.stats.forced) <= len(changes)


def test_every_jump_crossfades_for_at_least_morph_seconds():
    meta = graph_meta(morph=0.3)
    w = Walker(meta, seed=2, start_group=0)
    dt = 1 / 50
    fading, runs = 0, []
    for i in range(20000):
        w.step(dt, (i // 400) % G)
        s = w.streams()
        assert abs(sum(x[3] for x in s) - 1) < 1e-9
        if len(s) == 2:
            fading += 1
        elif fading:
            runs.append(fading)
            fading = 0
    assert len(runs) > 30
    assert min(runs) * dt >= 0.3 - dt - 1e-9, min(runs)


def test_capture_replay_switches_direction_at_the_baked_rate():
    meta = sample_meta(50)
    meta["keyframes"]["capture_view"] = [[20 * math.sin(k / 8), 5 * math.cos(k / 8)] for k in range(50)]
    meta["keyframes"]["fps"] = 10.0
    m = CaptureReplay(meta, seed=3)
    views, dirs = [], []
    for _ in range(60000):
        m.step(0.1)  # exactly one keyframe step
        views.append(m.view())
        dirs.append(m.direction)
    steps = len(dirs)
    # end bounces are forced; count switches away from the ends
    flips = sum(1 for a, b in zip(dirs, dirs[1:]) if a != b)
    ends = sum(1 for v in views if v in (tuple(meta["keyframes"]["capture_view"][0]),
                                          tuple(meta["keyframes"]["capture_view"][-1])))
    rate = (flips - ends) / steps
    assert abs(rate - 0.03) < 0.006, rate
    # every view shown is a captured one (integer steps) and all of them are reached
    cap = {tuple(v) for v in meta["keyframes"]["capture_view"]}
    assert {tuple(v) for v in views} <= {tuple(map(float, v)) for v in cap}
    assert len({tuple(v) for v in views}) == 50


def test_pcg32_gives_the_reference_values_docs_walk_md_names():
    from player.rng import Pcg32
    r = Pcg32(42, 54)
    assert [r.next_u32() for _ in range(6)] == [0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e]
    u = Pcg32(1)
    xs = [u.random() for _ in range(20000)]
    assert all(0.0 <= x < 1.0 for x in xs) and abs(np.mean(xs) - 0.5) < 0.01
    assert Pcg32(1, 0).next_u32() != Pcg32(1, 1).next_u32() != Pcg32(2, 1).next_u32()


def test_the_walk_and_the_replay_draw_from_pcg32_streams_0_and_1():
    # The browser player implements the same generator (docs/walk.md): these walks are pinned, so
    # a change of generator or of the order of draws shows here as well as in tests/test_web_player.py.
    from player.rng import Pcg32
    w = Walker(graph_meta(), seed=11, start_group=0)
    assert isinstance(w.rng, Pcg32) and w.rng.inc == 1
    jumps = []
    w.push_handlers(on_jump=lambda kind, s, d: jumps.append((s, d)))
    for _ in range(60 * 60):
        w.step(1 / 60, 0)
    assert jumps[:8] == [(29, 0), (29, 0), (29, 0), (24, 5), (19, 11), (29, 0), (19, 11), (24, 5)]
    meta = sample_meta(50)
    meta["keyframes"]["capture_view"] = [[float(k), 0.0] for k in range(50)]
    meta["keyframes"]["fps"] = 10.0
    m = CaptureReplay(meta, seed=3)
    assert isinstance(m.rng, Pcg32) and m.rng.inc == 3
    dirs = []
    for _ in range(400):
        m.step(0.1)
        dirs.append(m.direction)
    assert [i for i in range(1, 400) if dirs[i] != dirs[i - 1]][:6] == [26, 53, 79, 93, 123, 129]


def test_a_walk_can_start_at_any_keyframe():
    w = Walker(graph_meta(), seed=0, start_group=2, start=7)
    assert w.streams() == [(7, 8, 0.0, 1.0)]
    w.step(1 / 60, 2)  # the start group is the viewpoint's: no forced jump away from it
    assert w.main.k == 7 and w.jumps == 0
    with pytest.raises(ValueError, match="outside 0..29"):
        Walker(graph_meta(), start=30)
