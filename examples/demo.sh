#!/usr/bin/env bash
# The first thing to run: a synthetic subject -> bake -> player, in about five minutes on 2 CPU cores.
# Opens a window when a display exists; otherwise writes demo/demo.mp4.
set -euo pipefail
out=${1:-demo}
mkdir -p "$out"
bake synth -o "$out/subject" --seconds 10 --size 256
bake "$out/subject/subject.ckpt" -o "$out/subject.p4d" --views 7x3 --size 256
p4d info "$out/subject.p4d"
if [ -n "${DISPLAY:-}" ]; then
  player "$out/subject.p4d"
else
  player "$out/subject.p4d" --export "$out/demo.mp4" --seconds 20 --mode capture
  echo "no display: wrote $out/demo.mp4"
fi
