"""`p4d compare`: tile-by-tile scores of one portrait against another on the same grid."""

import json

import numpy as np
import pytest

from formats import P4DReader
from formats.cli import main
from formats.codecs import dequantize_depth
from formats.errors import EXIT_USAGE
from testkit.sample import write_sample

YAWS, PITCHES, SIZE, K = (-20.0, 0.0, 20.0), (-10.0, 10.0), (40, 32), 4


@pytest.fixture(scope="module")
def p4d(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("cmp") / "s.p4d", n_keyframes=K, yaws=YAWS, pitches=PITCHES,
                        size=SIZE, codecs={"color": "png", "alpha": "png", "depth": "png"})


def compare_json(capsys, a, b):
    rc = main(["compare", str(a), str(b), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


def test_a_file_against_itself_is_identical(capsys, p4d):
    res = compare_json(capsys, p4d, p4d)
    assert res["color"]["psnr_mean"] == res["color"]["psnr_min"] == 100.0
    assert res["color"]["per_view"] == [100.0] * len(YAWS) * len(PITCHES)
    assert res["alpha"]["mae_mean"] == res["alpha"]["mae_max"] == 0.0
    assert res["depth"]["rms_mm_mean"] == res["depth"]["rms_mm_max"] == 0.0


def test_a_reencoded_copy_scores_as_an_independent_psnr(capsys, p4d, tmp_path):
    lossy = tmp_path / "lossy.p4d"
    assert main(["repack", str(p4d), "-o", str(lossy), "--codec", "jpeg", "--quality", "40"]) == 0
    capsys.readouterr()
    res = compare_json(capsys, lossy, p4d)
    # The same figure computed here, straight from the decoded tiles.
    per_tile = np.zeros((K, len(YAWS) * len(PITCHES)))
    with P4DReader(lossy) as a, P4DReader(p4d) as b:
        for k in range(K):
            for v in range(per_tile.shape[1]):
                m = b.tile(k, v, "alpha") > 0
                diff = a.tile(k, v, "color")[m].astype(float) - b.tile(k, v, "color")[m].astype(float)
                per_tile[k, v] = 10 * np.log10(255 ** 2 / np.mean(diff ** 2))
    assert 20 < res["color"]["psnr_mean"] < 60
    assert res["color"]["psnr_mean"] == pytest.approx(per_tile.mean(), abs=1e-9)
    assert res["color"]["psnr_min"] == pytest.approx(per_tile.min(), abs=1e-9)
    assert res["color"]["per_view"] == pytest.approx(list(per_tile.mean(0)), abs=1e-9)
    assert res["alpha"]["mae_mean"] == 0.0 and res["depth"]["rms_mm_mean"] == 0.0  # lossless kinds untouched


def test_depth_error_is_the_rms_inside_the_alpha_in_mm(capsys, p4d, tmp_path):
    coarse = write_sample(tmp_path / "coarse.p4d", n_keyframes=K, yaws=YAWS, pitches=PITCHES, size=SIZE,
                          codecs={"color": "png", "alpha": "png", "depth": "png"}, depth_scale=4)
    res = compare_json(capsys, coarse, p4d)
    errs = []
    with P4DReader(coarse) as a, P4DReader(p4d) as b:
        near, far = b.meta["grid"]["depth"]["near"], b.meta["grid"]["depth"]["far"]
        for k in range(K):
            for v in range(len(YAWS) * len(PITCHES)):
                da = dequantize_depth(a.tile(k, v, "depth"), near, far)
                da = np.repeat(np.repeat(da, 4, 0), 4, 1)[:SIZE[0], :SIZE[1]]
                db = dequantize_depth(b.tile(k, v, "depth"), near, far)
                m = (b.tile(k, v, "alpha") > 0) & (da > 0) & (db > 0)
                errs.append(np.sqrt(np.mean((da[m].astype(float) - db[m]) ** 2)) * 1e3)
    assert res["depth"]["rms_mm_mean"] == pytest.approx(np.mean(errs), rel=1e-6) and np.mean(errs) > 0.1
    assert res["color"]["psnr_mean"] == 100.0


def test_files_on_other_grids_or_keyframes_are_refused_in_one_line(capsys, p4d, tmp_path):
    fewer_views = tmp_path / "v.p4d"
    fewer_keys = tmp_path / "k.p4d"
    assert main(["repack", str(p4d), "-o", str(fewer_views), "--yaws", "0-1"]) == 0
    assert main(["repack", str(p4d), "-o", str(fewer_keys), "--keyframes", "0-1"]) == 0
    capsys.readouterr()
    for other, needle in ((fewer_views, "different view grids"), (fewer_keys, "different keyframes")):
        rc = main(["compare", str(other), str(p4d)])
        _, err = capsys.readouterr()
        assert rc == EXIT_USAGE and needle in err and len(err.strip().splitlines()) == 1, err
