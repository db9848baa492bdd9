"""A contact sheet of one keyframe under five key lights, as the player draws them: the captured
light, then the key moved to the subject's left, right, above and below (head frame, `player
--light` conventions). With --truth (the synthetic subject) a second row shows the synthetic head
rendered under those very lights (`bake synth --light`).

    python bench/relight_sheet.py FILE.p4d -o SHEET.png [--keyframe K] [--yaw Y --pitch P]
                                  [--lights "Y,P;Y,P;..."] [--size 384] [--truth]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from formats import P4DReader  # noqa: E402
from player.light import Light  # noqa: E402
from player.playback import still  # noqa: E402
from player.render import RenderConfig  # noqa: E402

DEFAULT_LIGHTS = "captured;60,10;-60,10;0,60;0,-40"


def truth(reader, k: int, yaw: float, pitch: float, size: int, light: tuple[float, float] | None) -> np.ndarray:
    """The synthetic head at keyframe k's expression under a key light at ``light`` (None: its own)."""
    from bake.synthetic import SyntheticField
    from bake.synthetic.capture import SynthConfig
    from formats.camera import Camera, Intrinsics, orbit_pose
    g = reader.meta["grid"]
    intr = Intrinsics.from_dict(g["intrinsics"]).scaled(size, size)
    head = SynthConfig(light=light).head()
    rgb, a, _ = SyntheticField(head).render(Camera(intr, orbit_pose(yaw, pitch, g["radius"], g["center"])),
                                            np.asarray(reader.meta["keyframes"]["expressions"][k]))
    bg = np.asarray(RenderConfig().background)
    return np.clip((rgb + (1 - a[..., None]) * bg) * 255 + 0.5, 0, 255).astype(np.uint8), a > 0.5


def main(argv=None) -> int:
    import cv2
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="a relightable .p4d (format 1.2)")
    ap.add_argument("-o", "--output", required=True, help="the sheet (PNG)")
    ap.add_argument("--keyframe", type=int, default=0)
    ap.add_argument("--yaw", type=float, default=0.0, help="view yaw in degrees (default 0)")
    ap.add_argument("--pitch", type=float, default=0.0, help="view pitch in degrees (default 0)")
    ap.add_argument("--lights", default=DEFAULT_LIGHTS,
                    help=f"';'-separated YAW,PITCH of the key, 'captured' for the file's own (default {DEFAULT_LIGHTS})")
    ap.add_argument("--size", type=int, default=384, help="each frame's side in pixels (default 384)")
    ap.add_argument("--truth", action="store_true", help="a second row: the synthetic head under those lights")
    args = ap.parse_args(argv)
    with P4DReader(args.file) as r:
        if r.lighting is None:
            ap.error(f"{args.file} has no normals (format 1.2); bake it again or run `bake normals` on it")
        key = r.lighting["key"]
        lights = [None if s.strip() == "captured" else Light(*(float(x) for x in s.split(",")))
                  for s in args.lights.split(";")]
        rows = [[still(r, args.keyframe, args.yaw, args.pitch, args.size, light) for light in lights]]
        scores = []
        if args.truth:
            truths = [truth(r, args.keyframe, args.yaw, args.pitch, args.size,
                            None if light is None else (light.yaw, light.pitch)) for light in lights]
            rows.append([t for t, _ in truths])
            for got, (want, mask) in zip(rows[0], truths):
                mse = ((got.astype(np.float64) - want) ** 2)[mask].mean()
                scores.append(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))
    for row in rows:
        for img, light in zip(row, lights):
            label = (f"captured (key {key[0]:.0f},{key[1]:.0f})" if light is None
                     else f"light {light.yaw:.0f},{light.pitch:.0f}")
            cv2.putText(img, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    sheet = np.concatenate([np.concatenate(row, 1) for row in rows], 0)
    if not cv2.imwrite(args.output, sheet[..., ::-1]):
        raise SystemExit(f"{args.output}: could not write the sheet")
    print(f"wrote {args.output}: keyframe {args.keyframe} at yaw {args.yaw:g}, pitch {args.pitch:g} under "
          f"{len(lights)} lights{' beside the truth' if args.truth else ''}")
    if scores:
        print("PSNR against the truth inside its alpha: " + ", ".join(
            f"{lab} {db:.1f} dB" for lab, db in zip(args.lights.split(";"), scores)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
