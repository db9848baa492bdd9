"""The numba hash-encoding kernels against the pure-torch twin: values and gradients."""

import numpy as np
import pytest
import torch

from bake.nerf.encoding import HashBases, dense_levels, hash_encode, hash_encode_torch, level_resolutions


def _setup(levels=6, log2_t=10, feats=2, base=4, finest=96, batch=3, n=3000, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = level_resolutions(levels, base, finest)
    res = torch.tensor(r, dtype=torch.int32)
    dense = torch.tensor(dense_levels(r, 2 ** log2_t), dtype=torch.uint8)
    table = torch.randn(batch, levels, 2 ** log2_t, feats, generator=g)
    x = torch.rand(n, 3, generator=g)
    x[:8] = torch.tensor([[0, 0, 0], [1, 1, 1], [1, 0, 0.5], [0, 1, 1], [0.5, 0.5, 0.5],
                          [1e-7, 1 - 1e-7, 0.25], [0.999, 0.001, 0.5], [0.3, 1.0, 0.0]])
    bidx = torch.randint(0, batch, (n,), generator=g, dtype=torch.int32)
    return x, bidx, table, res, dense


def test_setup_has_dense_and_hashed_levels():
    *_, dense = _setup()
    assert 0 < int(dense.sum()) < len(dense)  # both index paths are exercised below


def test_forward_matches_torch_reference():
    x, bidx, table, res, dense = _setup()
    a = hash_encode(x, bidx, table, res, dense, "numba")
    b = hash_encode_torch(x, bidx, table, res, dense)
    assert a.shape == (x.shape[0], 6 * 2)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_backward_matches_torch_autograd():
    x, bidx, table, res, dense = _setup(feats=4)
    ta = table.clone().requires_grad_(True)
    tb = table.clone().requires_grad_(True)
    v = torch.randn(x.shape[0], 6 * 4, generator=torch.Generator().manual_seed(1))
    (ga,) = torch.autograd.grad(hash_encode(x, bidx, ta, res, dense, "numba"), ta, v)
    (gb,) = torch.autograd.grad(hash_encode_torch(x, bidx, tb, res, dense), tb, v)
    assert gb.abs().sum() > 0
    torch.testing.assert_close(ga, gb, atol=1e-4, rtol=1e-4)


def test_interpolation_is_exact_at_grid_vertices_and_linear_between():
    # One dense level of res 4: a vertex reads its own entry; a midpoint reads the mean of two.
    res, dense = torch.tensor([4], dtype=torch.int32), torch.tensor([1], dtype=torch.uint8)
    table = torch.randn(1, 1, 128, 1)
    idx = lambda i, j, k: i + 5 * j + 25 * k  # noqa: E731
    x = torch.tensor([[0.25, 0.5, 0.75], [0.375, 0.5, 0.75]])
    out = hash_encode(x, torch.zeros(2, dtype=torch.int32), table, res, dense)
    assert out[0, 0] == pytest.approx(float(table[0, 0, idx(1, 2, 3), 0]), abs=1e-6)
    mid = 0.5 * (table[0, 0, idx(1, 2, 3), 0] + table[0, 0, idx(2, 2, 3), 0])
    assert out[1, 0] == pytest.approx(float(mid), abs=1e-6)


def test_gradient_flows_to_every_basis_through_the_blend():
    enc = HashBases(n_expr=2, levels=4, log2_table=10, features=2, base_res=4, finest_res=32)
    w = torch.tensor([[0.5, 0.0], [0.0, 2.0]])
    x = torch.rand(500, 3)
    bidx = torch.randint(0, 2, (500,), dtype=torch.int32)
    enc(x, bidx, enc.blend(w)).sum().backward()
    g = enc.bases.grad
    # h0 is used by both images; basis 1 only by image 0 at w=0.5; basis 2 only by image 1 at w=2.
    assert g[0].abs().sum() > 0 and g[1].abs().sum() > 0 and g[2].abs().sum() > 0
    blended = enc.blend(w)
    torch.testing.assert_close(blended[1], enc.bases[0] + 2.0 * enc.bases[2])


def test_level_resolutions_span_the_range():
    r = level_resolutions(16, 16, 1024)
    assert r[0] == 16 and r[-1] == 1024 and all(a < b for a, b in zip(r, r[1:]))


def test_non_power_of_two_table_is_rejected():
    x, bidx, table, res, dense = _setup()
    with pytest.raises(ValueError, match="power of two"):
        hash_encode(x, bidx, table[:, :, :1000], res, dense)
