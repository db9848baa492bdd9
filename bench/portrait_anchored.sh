#!/usr/bin/env bash
# The capture-anchored portraits of real clips beside the field-only ones of the same checkpoints:
# for each clip measured by bench/portrait_baseline.sh (its dataset, checkpoint and field bake in
# OUT_DIR), bake `--source anchored` on the same grid (5x3 views, 1 keyframe/s) and score both
# with `bake eval-portrait`. Prints one JSON line per clip: {"clip", "field": {...}, "anchored": {...}}.
#
#   bash bench/portrait_anchored.sh [OUT_DIR] [CLIP ...]      (default: baseline/ d3 d9 d12)
#
# The anchored bake leaves the test split out (--leave-out test): a keyframe takes pixels from other
# frames too, and no test frame may give a pixel to what is scored against it. eval-portrait then
# replays only the keyframes whose frames the bake kept.
set -euo pipefail
out="${1:-baseline}"
shift || true
clips=("$@")
[ ${#clips[@]} -gt 0 ] || clips=(d3 d9 d12)
for c in "${clips[@]}"; do
  for f in "$out/$c/dataset.json" "$out/$c.ckpt" "$out/$c.p4d"; do
    [ -f "$f" ] || { echo "no $f: run bench/portrait_baseline.sh $out $c first" >&2; exit 2; }
  done
  [ -f "$out/$c.anchored.p4d" ] || bake "$out/$c.ckpt" -o "$out/$c.anchored.p4d" --views 5x3 --fps 1 \
      --source anchored --dataset "$out/$c" --leave-out test -q
  field=$(bake eval-portrait "$out/$c.p4d" "$out/$c" --sheet "$out/$c.portrait.png" --json)
  anchored=$(bake eval-portrait "$out/$c.anchored.p4d" "$out/$c" --sheet "$out/$c.anchored.portrait.png" --json)
  echo "{\"clip\": \"$c\", \"field\": $field, \"anchored\": $anchored}"
done
