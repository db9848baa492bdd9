#!/usr/bin/env bash
# The measured portraits of real clips: each shared clip tracked at 256, its field trained 3600
# steps (what 20 min of `bake train --size 256` makes on a quiet 2-core machine; a step budget keeps
# the figures the same on a busy or faster one), baked field-only (--source field: the baseline the
# anchored bake of bench/portrait_anchored.sh is measured against) on a 5x3 grid at 1 keyframe/s, then scored
# by `bake eval-portrait` (replay, held-out, sharpness; field_heldout_psnr from the checkpoint).
# Prints one JSON line per clip.  P4D_BASELINE_STEPS overrides the step budget.
#
#   bash bench/portrait_baseline.sh [OUT_DIR] [CLIP ...]      (default: baseline/ d3 d9 d12)
#
# Steps already done in OUT_DIR are kept (a dataset, checkpoint or bake that exists is reused),
# so a run can be stopped and continued. About 35 min a clip on 2 cores, most of it training.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${P4D_SHARED_DATA:-$root/../shared/data}"
out="${1:-baseline}"
shift || true
clips=("$@")
[ ${#clips[@]} -gt 0 ] || clips=(d3 d9 d12)
mkdir -p "$out"
for c in "${clips[@]}"; do
  [ -f "$data/$c.mp4" ] || { echo "no $data/$c.mp4" >&2; exit 2; }
  [ -f "$out/$c/dataset.json" ] || bake track "$data/$c.mp4" -o "$out/$c" --size 256 -q
  [ -f "$out/$c.ckpt" ] || bake train "$out/$c" -o "$out/$c.ckpt" --steps "${P4D_BASELINE_STEPS:-3600}" --size 256 -q
  [ -f "$out/$c.p4d" ] || bake "$out/$c.ckpt" -o "$out/$c.p4d" --views 5x3 --fps 1 --source field -q
  echo "{\"clip\": \"$c\", \"eval\": $(bake eval-portrait "$out/$c.p4d" "$out/$c" --checkpoint "$out/$c.ckpt" \
       --sheet "$out/$c.portrait.png" --json)}"
done
