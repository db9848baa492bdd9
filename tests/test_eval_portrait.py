"""`bake eval-portrait` on the synthetic subject, whose every render is exact."""

import json

import cv2
import numpy as np
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exact_p4d(synth_dir, tmp_path_factory):
    # Tiles at twice the 128 px capture: the replay then measures the warp, not the tiles' resolution.
    out = tmp_path_factory.mktemp("evalp") / "exact.p4d"
    run_cli("bake", str(synth_dir / "subject.ckpt"), "-o", str(out), "--views", "5x3", "--size", "256", "--fps", "2")
    return out


@pytest.fixture(scope="module")
def report(exact_p4d, synth_dir, tmp_path_factory):
    sheet = tmp_path_factory.mktemp("evalp_sheet") / "sheet.png"
    res = run_cli("bake", "eval-portrait", str(exact_p4d), str(synth_dir), "--checkpoint",
                  str(synth_dir / "subject.ckpt"), "--json", "--sheet", str(sheet))
    return json.loads(res.stdout), sheet


def test_the_exact_portrait_replays_its_video(report):
    res, sheet = report
    for key in ("replay_psnr", "replay_psnr_p10", "replay_ssim", "replay_sharpness", "heldout_psnr", "heldout_ssim",
                "heldout_sharpness", "field_heldout_psnr"):
        assert isinstance(res[key], float), key
    assert isinstance(res["heldout_frames"], int) and res["heldout_frames"] > 0
    assert res["replay_psnr"] >= 30.0, res
    assert res["replay_psnr_p10"] <= res["replay_psnr"]
    # The field draws each held-out frame with that frame's own expression and camera: exact.
    assert res["field_heldout_psnr"] > 33.0 and res["field_heldout_psnr"] > res["heldout_psnr"]
    assert 0.4 < res["replay_sharpness"] < 1.5
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[1] == 3 * 128 and img.shape[0] >= 4 * 128  # worst and median, twice


def test_a_blurred_or_shifted_portrait_scores_clearly_lower(exact_p4d, synth_dir):
    from bake.data.load import load_dataset
    from bake.evaluation.portrait import PortraitEvaluation, replay_pairs, score
    from formats import P4DReader
    ds = load_dataset(synth_dir)
    with P4DReader(exact_p4d) as r:
        ev = PortraitEvaluation(r, ds)
        try:
            base, blur, shift = [], [], []
            for k, i in replay_pairs(ev.kf_frames)[::2]:
                truth, mask = ev.truth(i)
                img = ev.draw(k, i)
                base.append(score(img, truth, mask))
                blur.append(score(cv2.GaussianBlur(img, (0, 0), 1.5), truth, mask))
                shift.append(score(np.roll(img, 2, axis=1), truth, mask))
        finally:
            ev.close()
    mean = lambda xs, f: float(np.mean([getattr(x, f) for x in xs]))  # noqa: E731
    assert mean(blur, "psnr") < mean(base, "psnr") - 2 and mean(shift, "psnr") < mean(base, "psnr") - 3
    assert mean(blur, "sharpness") < 0.7 * mean(base, "sharpness")  # blur shows in sharpness too
    assert mean(shift, "sharpness") > 0.9 * mean(base, "sharpness")  # a shift does not: PSNR catches it


def test_heldout_frames_are_the_test_split_and_never_their_own_source(exact_p4d, synth_dir):
    from bake.data.load import load_dataset
    from bake.evaluation.portrait import heldout_pairs, keyframe_frames
    from formats import P4DReader
    ds = load_dataset(synth_dir)
    with P4DReader(exact_p4d) as r:
        kf_frames = keyframe_frames(r.meta["keyframes"]["times"], ds.times())
    test = ds.split["test"]
    pairs = heldout_pairs(kf_frames, ds.expressions(), test)
    assert [b for _, b in pairs] == list(test) and len(test) > 0
    assert all(int(kf_frames[k]) not in set(test) for k, _ in pairs)
    # Among those allowed, the nearest in expression.
    e = ds.expressions()
    allowed = [k for k, i in enumerate(kf_frames) if int(i) not in set(test)]
    for k, b in pairs:
        d = [np.sum((e[kf_frames[a]] - e[b]) ** 2) for a in allowed]
        assert np.sum((e[kf_frames[k]] - e[b]) ** 2) == min(d)


def test_replay_skips_the_frames_the_bake_left_out(exact_p4d, synth_dir):
    # A keyframe whose frame the bake left out of its sources is not anchored there: scoring it
    # against that frame would be a held-out score counted as a replay.
    from bake.data.load import load_dataset
    from bake.evaluation.portrait import keyframe_frames, replay_pairs
    from formats import P4DReader
    ds = load_dataset(synth_dir)
    with P4DReader(exact_p4d) as r:
        kf_frames = keyframe_frames(r.meta["keyframes"]["times"], ds.times())
    every = replay_pairs(kf_frames)
    assert every == [(k, int(i)) for k, i in enumerate(kf_frames)]
    out = set(ds.split["test"]) | {int(kf_frames[1]), int(kf_frames[3])}
    kept = replay_pairs(kf_frames, left_out=sorted(out))
    assert kept == [(k, i) for k, i in every if i not in out]
    assert 0 < len(kept) <= len(every) - 2


def test_bad_input_is_one_line(synth_dir, small_p4d, tmp_path):
    for args, needle in (([str(tmp_path / "none.p4d"), str(synth_dir)], "no such file"),
                         ([str(small_p4d), str(tmp_path)], "dataset"),
                         ([str(small_p4d), str(synth_dir), "--sheet", str(tmp_path / "no" / "s.png")], "folder")):
        r = run_cli("bake", "eval-portrait", *args, check=False)
        assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
