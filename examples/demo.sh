#!/usr/bin/env bash
# The first thing to run: a synthetic subject -> bake -> player, in a few minutes on 2 CPU cores.
# Opens a window when a display exists; otherwise writes demo/demo.mp4.
#   bash examples/demo.sh [OUTDIR]
set -euo pipefail
out=${1:-demo}
mkdir -p "$out"
# An 8 s capture keeps the demo short; the product default is a 20 s capture.
[ -f "$out/subject/subject.ckpt" ] || bake synth -o "$out/subject" --seconds 8 --size 256
bake "$out/subject/subject.ckpt" -o "$out/subject.p4d" --views 7x3 --size 256 --fps 10
p4d info "$out/subject.p4d"
if [ -n "${DISPLAY:-}" ] && player "$out/subject.p4d"; then
  exit 0
fi
player "$out/subject.p4d" --export "$out/demo.mp4" --seconds 20 --mode capture
echo "wrote $out/demo.mp4 (play it with any video player)"
