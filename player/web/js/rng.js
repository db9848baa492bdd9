// PCG32 (docs/walk.md), the generator both players draw the walk from: player/rng.py is the
// same, so a seed gives the same walk in the window and in the page. BigInt keeps the 64-bit
// state exact; a draw happens once per keyframe, so its speed does not matter.

const MULT = 6364136223846793005n;
const MASK64 = (1n << 64n) - 1n;

export class Pcg32 {
  /** seed: any integer (mod 2^64); stream: the walker uses 0, the capture replay 1. */
  constructor(seed = 0, stream = 0) {
    this.inc = ((BigInt(stream) << 1n) | 1n) & MASK64;
    this.state = 0n;
    this.nextU32();
    this.state = (this.state + (BigInt(seed) & MASK64)) & MASK64;
    this.nextU32();
  }

  nextU32() {
    const old = this.state;
    this.state = (old * MULT + this.inc) & MASK64;
    const xorshifted = Number((((old >> 18n) ^ old) >> 27n) & 0xffffffffn);
    const rot = Number(old >> 59n);
    return ((xorshifted >>> rot) | (xorshifted << ((32 - rot) & 31))) >>> 0;
  }

  /** A double in [0, 1): (a >> 5) * 2^26 + (b >> 6), over 2^53. */
  random() {
    const a = this.nextU32() >>> 5;
    const b = this.nextU32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }
}
