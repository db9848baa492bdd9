"""Format 1.2: normal tiles (octahedral codes) and the captured light; the code round trip, the
version mark, what a reader rejects, older files, repack and `p4d info`."""

import copy
import json

import numpy as np
import pytest

from formats import P4DFormatError, P4DReader
from formats.cli import main
from formats.lighting import oct_decode, oct_encode, pack_codes
from testkit.fuzz import header_get, header_set, forge, open_and_decode, with_meta
from testkit.sample import SAMPLE_SH, portrait_normals, portrait_tile, write_sample

KINDS4 = ("color", "alpha", "depth", "normal")


def _unit(n):
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def test_octahedral_codes_round_trip_within_a_degree():
    rng = np.random.default_rng(3)
    n = _unit(rng.normal(size=(200000, 3)))
    # the axes, the diagonals' folds and the seams of the lower hemisphere
    n = np.concatenate([n, np.eye(3), -np.eye(3), _unit(np.array([[1.0, 1, -1e-9], [-1, 1, -1], [0, -1, -1]]))])
    back = oct_decode(oct_encode(n))
    err = np.degrees(np.arccos(np.clip((back * n).sum(-1), -1, 1)))
    assert err.max() < 1.0 and err.mean() < 0.4
    assert np.allclose(np.linalg.norm(back, axis=-1), 1.0)
    # every one of the 65536 codes decodes to a normal that re-codes to (nearly) itself: where the
    # fold maps several codes to one normal (the lower hemisphere's seams) the normal is what counts
    u, v = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    first = oct_decode(np.stack([u, v], -1).astype(np.uint8))
    again = oct_decode(oct_encode(first))
    assert np.degrees(np.arccos(np.clip((first * again).sum(-1), -1, 1))).max() < 0.5
    assert pack_codes(np.array([[3, 7]], np.uint8)).tolist() == [3 * 256 + 7]


@pytest.mark.parametrize("codec", ["webp", "png", "raw+zstd"])
@pytest.mark.parametrize("ns", [1, 2])
def test_normal_tiles_round_trip_and_mark_the_file_1_2(tmp_path, codec, ns):
    size = (23, 17)
    p = write_sample(tmp_path / "n.p4d", n_keyframes=2, size=size, kinds=KINDS4, normal_scale=ns,
                     codecs={"color": "png", "alpha": "png", "depth": "png", "normal": codec})
    data = p.read_bytes()
    assert (header_get(data, "minor"), header_get(data, "kind_mask")) == (2, 0b10111)
    with P4DReader(p) as r:
        assert r.version == (1, 2) and r.normal_scale == ns
        assert r.kind_shape("normal") == (-(-23 // ns), -(-17 // ns))
        assert r.lighting["sh"] == list(SAMPLE_SH)
        assert r.index["kind"][0, 0].tolist() == [0, 1, 2, 4]
        for k in range(2):
            for v in range(3):
                _, _, depth = portrait_tile(*size, [-20.0, 0.0, 20.0][v], 0.0, t=k, seed=k * 1000 + v)
                np.testing.assert_array_equal(r.tile(k, v, "normal"), portrait_normals(depth, ns))
        assert r.verify() == []


def test_older_files_keep_their_version_and_have_no_lighting(tmp_path):
    a = write_sample(tmp_path / "a.p4d")
    b = write_sample(tmp_path / "b.p4d", depth_bits=8, codecs={"color": "png", "alpha": "png", "depth": "webp"})
    with P4DReader(a) as ra, P4DReader(b) as rb:
        assert (ra.version, rb.version) == ((1, 0), (1, 1))
        assert ra.lighting is None and rb.lighting is None and "normal" not in ra.kinds


def _good(tmp_path) -> bytes:
    return write_sample(tmp_path / "g.p4d", n_keyframes=2, yaws=(0.0,), size=(12, 10), kinds=KINDS4,
                        normal_scale=2, codecs={"color": "png", "alpha": "png", "depth": "png",
                                                "normal": "png"}).read_bytes()


def test_what_a_reader_rejects(tmp_path):
    good = _good(tmp_path)
    with P4DReader(tmp_path / "g.p4d") as r:
        meta = r.meta

    def meta_case(edit):
        m = copy.deepcopy(meta)
        edit(m)
        return with_meta(good, m)

    def older(minor):
        d = bytearray(good)
        header_set(d, "minor", minor)
        return bytes(forge(d))

    cases = {
        "format 1.2, the header says 1.1": older(1),
        "format 1.2, the header says 1.0": older(0),
        "normal_scale is missing": meta_case(lambda m: m["tiles"].pop("normal_scale")),
        "normal_scale must be one of": meta_case(lambda m: m["tiles"].update(normal_scale=3)),
        "lighting.sh must have 9 entries": meta_case(lambda m: m["lighting"].update(sh=[1.0] * 8)),
        "lighting.sh\\[0\\]": meta_case(lambda m: m["lighting"].update(sh=[0.0] + [1.0] * 8)),
        "lighting.key must be \\[yaw": meta_case(lambda m: m["lighting"].update(key=[0.0, 95.0, 1.0, 0.0])),
        "lighting.key must have 4 entries": meta_case(lambda m: m["lighting"].update(key=[0.0, 5.0, 1.0])),
        "lighting is missing|lighting.sh is missing": meta_case(lambda m: m.pop("lighting")),
        # the stored normal tiles are 5x6 (scale 2); scale 1 says 10x12
        "normal tiles at meta.tiles.normal_scale 1": meta_case(lambda m: m["tiles"].update(normal_scale=1)),
        "normal_scale / meta.lighting are set but the file has no normal tiles":
            with_meta(write_sample(tmp_path / "o.p4d", n_keyframes=2).read_bytes(),
                      {**P4DReader(tmp_path / "o.p4d").meta, "lighting": meta["lighting"]}),
    }
    for match, data in cases.items():
        with pytest.raises(P4DFormatError, match=match):
            open_and_decode(tmp_path, data)
    # an unknown kind bit (3, the preview's id) is refused before anything else
    d = bytearray(good)
    header_set(d, "kind_mask", 0b11111)
    with pytest.raises(P4DFormatError, match="kind_mask"):
        open_and_decode(tmp_path, bytes(forge(d)))


def test_repack_carries_normals_and_info_reports_them(tmp_path, capsys):
    src = write_sample(tmp_path / "s.p4d", n_keyframes=3, size=(20, 16), kinds=KINDS4, normal_scale=2)
    out = tmp_path / "r.p4d"
    assert main(["repack", str(src), "-o", str(out), "--keyframes", "0,2", "--codec", "png"]) == 0
    with P4DReader(src) as a, P4DReader(out) as b:
        assert b.version == (1, 2) and b.lighting == a.lighting and b.normal_scale == 2
        for nk, k in enumerate((0, 2)):
            for v in range(3):
                np.testing.assert_array_equal(b.tile(nk, v, "normal"), a.tile(k, v, "normal"))
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == "1.2" and info["normal_scale"] == 2 and info["kinds"]["normal"]["stored_shape"] == [10, 8]
    assert main(["info", str(write_sample(tmp_path / "old.p4d"))]) == 0
    assert "cannot relight" in capsys.readouterr().out
