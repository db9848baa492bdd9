"""Frame step 4, part 3a (see ``warp``): the pixels of EMPTY and MESH cells, whose source
coordinates and blend weights follow the cell's bilinear map in fixed point."""

from __future__ import annotations

import numpy as np
from numba import njit

from .intrinsics import _load_pair
from .lattice import MODE_EMPTY, MODE_MESH_RAMP, MODE_PIXEL  # noqa: F401  (MESH_RAMP: in _MESH_CELL)
from .slots import define, per_slot, terms


@njit(inline="always")
def _node_fx(nodes, bits, slot, c, j, i):
    """Node quantity c (0 = u, 1 = v, 2 = weight) of a MESH slot's source at node (j, i), in 16.16
    fixed point; 0 for a slot the cell does not use (a free slot is 4)."""
    on = (bits >> slot) & 1
    s = slot if on else 0
    return np.int64(nodes[s, c, j, i] * 65536.0 + 0.5) * on


@njit(inline="always")
def _per(a, b, recip):
    """The step from a to b over the cell's width (recip: 1 / the width in 16.16), in 16.16."""
    return ((b - a) * recip) >> 16


@njit(cache=True, nogil=True)
def _cell_map(nodes, bits, slot, c, j0, i_n, k, recip):
    """A MESH slot's node quantity c over the cell with corner nodes (j0, i_n) and k nodes on, as
    the integer bilinear map value(row q, pixel t) = (A + B q) + (C + D q) t in 16.16 from the
    corners' values: (A, B, C, D) = (the top-left value, the left edge's step per row, the top
    edge's step per pixel, that step's change per row). Steps are floored, so a row's value and
    step are exact integer sums, the same however a loop forms them.

    Not inlined by numba: ``_mesh_cell`` calls it a dozen times, and numba's own inlining copies
    the whole body into every call before LLVM simplifies anything, which made the player's
    kernels take minutes longer to compile. LLVM still inlines it where that pays."""
    tl = _node_fx(nodes, bits, slot, c, j0, i_n)
    bl = _node_fx(nodes, bits, slot, c, j0 + k, i_n)
    top = _per(tl, _node_fx(nodes, bits, slot, c, j0, i_n + k), recip)
    bottom = _per(bl, _node_fx(nodes, bits, slot, c, j0 + k, i_n + k), recip)
    return tl, _per(tl, bl, recip), top, _per(top, bottom, recip)


def _slot_table() -> np.ndarray:
    """[16, 5]: for each bit mask of at most 4 sources, its sources in order (4 = none) and, in
    the last column, how many there are. A constant, so a MESH span looks its sources up instead
    of counting bits (spans are ``stride`` pixels wide: per-span work shows in the frame time)."""
    tab = np.full((16, 5), 4, np.int64)
    for bits in range(16):
        srcs = [s for s in range(4) if (bits >> s) & 1]
        tab[bits, :len(srcs)] = srcs
        tab[bits, 4] = len(srcs)
    return tab


_SLOTS = _slot_table()


@njit(inline="always")
def _clamp(f, hi):
    """A 16.16 coordinate clamped to [0, hi]."""
    return min(max(f, np.int64(0)), hi)


@njit(inline="always")
def _ramp_w(w0, dw, t):
    """A MESH_RAMP slot's 1/256 weight at span pixel t: floored, never below 0."""
    return max((w0 + dw * t) >> 16, 0)


@njit(inline="always")
def _spread(p):
    """RGBA word -> uint64 with one channel per 16-bit lane (R, B, G, A from the low end): a
    channel times a weight up to 256 then fits its lane, so one multiply scales all four."""
    q = np.uint64(p)
    return (q & np.uint64(0xFF00FF)) | ((q & np.uint64(0xFF00FF00)) << np.uint64(24))


_LANES64 = 0x00FF00FF00FF00FF


_HALF64 = 0x0080008000800080


@njit(inline="always")
def _tap_fx(flat, w_s, base, uf, vf):
    """Bilinear sample at 16.16 (uf, vf) of the source starting at flat[base] (width w_s): the
    four channels in 16-bit lanes (``_spread``), each 0..255 (weights in 1/256, rounded).

    Unsigned arithmetic (a lane's sum stays below 255 * 256 + 128, so no carry crosses lanes)
    and an unsigned index, which spares every load numba's negative-index wraparound test."""
    fu = np.uint64((uf >> 8) & 255)
    fv = np.uint64((vf >> 8) & 255)
    w01 = ((np.uint64(256) - fv) * fu) >> np.uint64(8)
    w00 = np.uint64(256) - fv - w01
    w11 = (fv * fu) >> np.uint64(8)
    w10 = fv - w11
    i = np.uint64(base + (vf >> 16) * w_s + (uf >> 16))
    top = _load_pair(flat, i)  # taps (0, 0) and (0, 1)
    bot = _load_pair(flat, i + np.uint64(w_s))  # (1, 0) and (1, 1)
    lo = np.uint64(0xFFFFFFFF)
    hi = np.uint64(32)
    acc = (_spread(top & lo) * w00 + _spread(top >> hi) * w01
           + _spread(bot & lo) * w10 + _spread(bot >> hi) * w11)
    return ((acc + np.uint64(_HALF64)) >> np.uint64(8)) & np.uint64(_LANES64)


@njit(inline="always")
def _acc_fx(flat, w_s, base, uf, vf, wgt, acc):
    """The lane sums plus one source's bilinear tap (``_tap_fx``) times its 1/256 weight."""
    return acc + _tap_fx(flat, w_s, base, uf, vf) * np.uint64(wgt)


@njit(inline="always")
def _store_fx(out32, y, x, acc):
    """Lane sums (weights in 1/256 summing to 256) -> one packed RGBA word at out32[y, x]."""
    c = ((acc + np.uint64(_HALF64)) >> np.uint64(8)) & np.uint64(_LANES64)
    out32[y, x] = np.uint32((c & np.uint64(0xFF00FF)) | ((c >> np.uint64(24)) & np.uint64(0xFF00FF00)))


# ``_mesh_cell``, generated from one slot's code (``slots``). Slot s blends source s{s} (the
# cell's sources packed into the first slots; 4 = a free slot, weight 0, reading source 0 at its
# first pixel). Per slot and coordinate, ``_cell_map``'s (A, B, C, D): u{s} the top-left value,
# u{s}_q its change per row, du{s} the step per pixel along the top row, du{s}_q that step's change
# per row; ur{s} / dur{s} the value and step at the start of row q.
_CELL_SLOT = """\
    s{s} = _SLOTS[bits, {s}]
"""
_CELL_MAPS = """\
    u{s}, u{s}_q, du{s}, du{s}_q = _cell_map(nodes, bits, s{s}, 0, j0, i_n, k, recip)
    v{s}, v{s}_q, dv{s}, dv{s}_q = _cell_map(nodes, bits, s{s}, 1, j0, i_n, k, recip)
"""
_CELL_BASE = """\
    b{s} = s{s} * hw * ((bits >> s{s}) & 1)
"""
_RAMP_MAPS = """\
        wt{s}, wt{s}_q, dwt{s}, dwt{s}_q = _cell_map(nodes, bits, s{s}, 2, j0, i_n, k, recip)
"""
_ROW_START = """\
    ur{s} = u{s} + u{s}_q * q
    dur{s} = du{s} + du{s}_q * q
    vr{s} = v{s} + v{s}_q * q
    dvr{s} = dv{s} + dv{s}_q * q
"""
_RAMP_ROW_START = """\
            wtr{s} = wt{s} + wt{s}_q * q
            dwtr{s} = dwt{s} + dwt{s}_q * q
"""
_RAMP_WEIGHT = """\
                wp{s} = _ramp_w(wtr{s}, dwtr{s}, t)
"""
_RAMP_REMAINDER = """\
                wp{s} += left if s{s} == r else 0
"""
_RAMP_TAP = """\
                acc = _acc_fx(flat, w_s, b{s}, _clamp(ur{s} + dur{s} * t, umax), _clamp(vr{s} + dvr{s} * t, vmax),
                              wp{s}, acc)
"""
_PLAIN_WEIGHT = """\
    wp{s} = _node_fx(nodes, bits, s{s}, 2, j0, i_n) >> 16
"""
_TAP = """\
                acc = _acc_fx(flat, w_s, b{s}, ur{s} + dur{s} * t, vr{s} + dvr{s} * t, wp{s}, acc)
"""


def _indent(code: str, n: int) -> str:
    return "".join(" " * n + line if line.strip() else line for line in code.splitlines(keepends=True))


_MESH_CELL = f'''\
def _mesh_cell(flat, w_s, h_s, hw, nodes, cm, bits, r, j0, i_n, k, recip, x0, x1, y0, y1, out32):
    """Target pixels [x0, x1) x [y0, y1) of a MESH or MESH_RAMP cell (corner nodes (j0, i_n) and k
    nodes on; recip: 1 / its width in 16.16; bits: its sources; r: a ramp's remainder source),
    blended into out32 (see ``_warp``).

    Fixed point, so the inner loop is integer adds, shifts and multiplies: source coordinates
    (and a ramp's weights) in 16.16, each slot's on the cell's integer bilinear map
    (``_cell_map``), set up once per cell: a row's start and step are then a multiply-add away
    (setting them up from the nodes at every row took a fifth of the warp). Bilinear and blend
    weights in 1/256, each summing to exactly 256; the four channels in 16-bit lanes of one
    integer (``_spread``). Up to four source slots in registers, generated from one slot's code
    (``slots``), the cell's sources packed into the first ones: fixed code, no per-pixel loop
    over a scratch array, and a cell or frame that uses fewer sources taps only those. No tuples,
    no subarrays: see ``_warp``, step 3."""
    n_used = _SLOTS[bits, 4]
{per_slot(_CELL_SLOT)}\
{per_slot(_CELL_MAPS)}\
{per_slot(_CELL_BASE)}\
    if cm == MODE_MESH_RAMP:
        # Weights step across the cell; the remainder to 256 goes to the slot of source r (its
        # weight is >= 1 all over the cell, so it stays >= 0; r is one of the cell's sources).
        # Coordinates clamped so a tap's 2x2 footprint stays inside its image.
{per_slot(_RAMP_MAPS)}\
        umax = np.int64(((w_s - 1) << 16) - 1)
        vmax = np.int64(((h_s - 1) << 16) - 1)
        # The row starts are written out again for the plain cells below: one row loop for
        # both, testing for a ramp inside it, made the warp 1.3 % slower (measured side by side).
        for y in range(y0, y1):
            q = y - y0
{_indent(per_slot(_ROW_START), 8)}\
{per_slot(_RAMP_ROW_START)}\
            for x in range(x0, x1):
                t = x - x0
{per_slot(_RAMP_WEIGHT)}\
                left = 256 - {terms("wp{s}", " - ")}
{per_slot(_RAMP_REMAINDER)}\
                acc = np.uint64(0)
{per_slot(_RAMP_TAP)}\
                _store_fx(out32, y, x, acc)
        return
    # The corners agree: constant weights (whole numbers at the nodes).
{per_slot(_PLAIN_WEIGHT)}\
    for y in range(y0, y1):
        q = y - y0
{_indent(per_slot(_ROW_START), 4)}\
        # One loop per tap count: a test on the count inside one loop made 4-source frames ~30 %
        # slower (measured side by side); 3 sources share the 4-tap loop (the 4th slot weighs 0).
        if n_used >= 3:
            for x in range(x0, x1):
                t = x - x0
                acc = np.uint64(0)
{per_slot(_TAP)}\
                _store_fx(out32, y, x, acc)
        elif n_used == 2:
            for x in range(x0, x1):
                t = x - x0
                acc = np.uint64(0)
{per_slot(_TAP, (0, 1))}\
                _store_fx(out32, y, x, acc)
        else:
            for x in range(x0, x1):
                t = x - x0
                acc = np.uint64(0)
{per_slot(_TAP, (0,))}\
                _store_fx(out32, y, x, acc)
'''
_mesh_cell = njit(inline="always")(define(_MESH_CELL, "_mesh_cell", globals()))


@njit(inline="always")
def _clear(out32, y0, y1, x0, x1):
    """Target pixels [x0, x1) x [y0, y1) made transparent."""
    for y in range(y0, y1):
        for x in range(x0, x1):
            out32[y, x] = 0


@njit(inline="always")
def _mesh_band(flat, w_s, h_s, nodes, mode, used, rem, fmode, fused, frem, stride, split, jc, out32):
    """Step 3a of ``_warp`` for the band of target rows of coarse cell row jc: its EMPTY and MESH
    cells' pixels, a cell at a time (PIXEL cells are left to step 3b; a split cell's four fine
    cells each on its own). A function of its own so a test can check that LLVM vectorises it."""
    hw = h_s * w_s
    fine = stride // split
    recip_c = (65536 + stride // 2) // stride  # 1 / stride in 16.16
    recip_f = (65536 + fine // 2) // fine
    wn = mode.shape[1]
    ho, wo = out32.shape[0], out32.shape[1]
    y0 = jc * stride
    y1 = min(y0 + stride, ho)
    # EMPTY cells are cleared a run at a time: one loop (a memset) per row of the run instead of
    # one per cell; e0 is where the current run of them starts (-1: none open).
    e0 = -1
    for ic in range(wn - 1):
        x0 = ic * stride
        if x0 >= wo:
            break
        cm = mode[jc, ic]
        if cm == MODE_EMPTY:
            if e0 < 0:
                e0 = x0
            continue
        if e0 >= 0:
            _clear(out32, y0, y1, e0, x0)
            e0 = -1
        n_sub = 1
        if cm == MODE_PIXEL:
            n_sub = 4 if split == 2 else 0  # a split cell: its four fine cells
        for q in range(n_sub):
            if n_sub == 4:
                jn = 2 * jc + q // 2  # the cell's top-left node on the node arrays
                i_n = 2 * ic + q % 2
                sm = fmode[jn, i_n]
                bits = np.int64(fused[jn, i_n])
                r = np.int64(frem[jn, i_n])
                k = 1
                recip = recip_f
            else:
                jn = jc * split
                i_n = ic * split
                sm = cm
                bits = np.int64(used[jc, ic])
                r = np.int64(rem[jc, ic])
                k = split
                recip = recip_c
            sx0 = i_n * fine
            sy0 = jn * fine
            if sx0 >= wo or sy0 >= ho:
                continue
            sx1 = min(sx0 + k * fine, wo)
            sy1 = min(sy0 + k * fine, ho)
            if sm == MODE_EMPTY:
                _clear(out32, sy0, sy1, sx0, sx1)
            elif sm != MODE_PIXEL:
                _mesh_cell(flat, w_s, h_s, hw, nodes, sm, bits, r, jn, i_n, k, recip, sx0, sx1, sy0, sy1, out32)
    if e0 >= 0:
        _clear(out32, y0, y1, e0, wo)
