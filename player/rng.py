"""PCG32: the one small random generator both players draw the walk from (docs/walk.md).

O'Neill's PCG32 (XSH RR, 64-bit state, 32-bit output), seeded as the reference
``pcg32_srandom_r(initstate, initseq)``; ``random()`` makes a double in [0, 1) from two outputs
(53 bits). The browser player (``player/web/js/rng.js``) implements the same, so a seed gives
the same walk in both; plain Python integers, so the arithmetic is exact on every platform.

>>> r = Pcg32(42, 54)
>>> [hex(r.next_u32()) for _ in range(3)]
['0xa15c02b7', '0x7b47f409', '0xba1d3330']
"""

from __future__ import annotations

_MULT = 6364136223846793005
_MASK64 = (1 << 64) - 1


class Pcg32:
    """A PCG32 stream: ``seed`` (any integer, taken mod 2^64) and ``stream`` (selects one of 2^63
    independent sequences; the walker uses 0, the capture replay 1)."""

    def __init__(self, seed: int = 0, stream: int = 0):
        self.inc = ((int(stream) << 1) | 1) & _MASK64
        self.state = 0
        self.next_u32()
        self.state = (self.state + int(seed)) & _MASK64
        self.next_u32()

    def next_u32(self) -> int:
        old = self.state
        self.state = (old * _MULT + self.inc) & _MASK64
        xorshifted = (((old >> 18) ^ old) >> 27) & 0xFFFFFFFF
        rot = old >> 59
        return ((xorshifted >> rot) | (xorshifted << ((-rot) & 31))) & 0xFFFFFFFF

    def random(self) -> float:
        """A double in [0, 1): (a >> 5) * 2^26 + (b >> 6), over 2^53, from two outputs a, b."""
        a = self.next_u32() >> 5
        b = self.next_u32() >> 6
        return (a * 67108864 + b) / 9007199254740992.0
