"""The `p4d` tool on small files written in the test: outputs, one-line errors and exit codes
(formats/errors.py: 1 a failure while working or validate's "not sound", 2 bad usage or an
unusable input, 130 interrupted), and no output or temp file left behind by a failed command."""

import errno
import json
import os
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest

from formats import P4DReader, P4DWriter
from formats.cli import main
from formats.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE
from testkit.sample import write_sample

YAWS, PITCHES, SIZE, K = (-30.0, -15.0, 0.0, 15.0, 30.0), (-10.0, 0.0, 10.0), (24, 18), 5
SUBCOMMANDS = ["info", "validate", "extract", "contact-sheet", "quilt", "repack", "graph", "compare"]


@pytest.fixture(scope="module")
def p4d(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("cli") / "s.p4d", n_keyframes=K, yaws=YAWS, pitches=PITCHES,
                        size=SIZE, n_groups=3)


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def imread(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return img


def test_info_json(capsys, p4d):
    rc, out, _ = run(capsys, "info", p4d, "--json")
    assert rc == 0
    info = json.loads(out)
    assert (info["views"], info["keyframes"], info["transitions"], info["pose_groups"]) == (15, K, 2, 3)
    assert info["grid"]["yaws"] == list(YAWS) and info["grid"]["pitches"] == list(PITCHES)
    assert (info["grid"]["height"], info["grid"]["width"]) == SIZE
    assert info["codecs"] == {"color": "jpeg", "alpha": "png", "depth": "png"}
    with P4DReader(p4d) as r:
        for i, kind in enumerate(r.kinds):
            nbytes = int(sum(int(x) for x in r.index["length"][:, :, i].ravel()))
            assert info["kinds"][kind]["bytes"] == nbytes
            assert info["kinds"][kind]["bits_per_pixel"] == pytest.approx(8 * nbytes / (K * 15 * SIZE[0] * SIZE[1]))
    assert info["bytes"] == p4d.stat().st_size


def test_info_text(capsys, p4d):
    rc, out, _ = run(capsys, "info", p4d)
    assert rc == 0 and "15 views" in out and "bits/tile px" in out and "bits/stored px" in out and "3 pose groups" in out


def test_validate_sound_file(capsys, p4d):
    rc, out, _ = run(capsys, "validate", p4d)
    assert rc == 0 and "ok" in out


def test_validate_catches_any_single_byte_change_inside_a_tile(capsys, p4d, tmp_path):
    good = p4d.read_bytes()
    with P4DReader(p4d) as r:
        recs = [(k, v, kind, int(r.index[k, v, i]["offset"]), int(r.index[k, v, i]["length"]))
                for k in range(K) for v in range(15) for i, kind in enumerate(r.kinds)]
    rng = np.random.default_rng(5)
    bad = tmp_path / "bad.p4d"
    for j in rng.choice(len(recs), 12, replace=False):
        k, v, kind, off, length = recs[j]
        pos = off + int(rng.integers(0, length))
        data = bytearray(good)
        data[pos] = (data[pos] + int(rng.integers(1, 256))) % 256
        bad.write_bytes(data)
        rc, out, _ = run(capsys, "validate", bad)
        lines = out.strip().splitlines()
        assert rc == EXIT_FAILURE and len(lines) == 1
        assert f"keyframe {k}, view {v}, {kind}" in lines[0]


def test_validate_broken_structure_is_one_line(capsys, p4d, tmp_path):
    bad = tmp_path / "t.p4d"
    bad.write_bytes(p4d.read_bytes()[:1000])
    rc, out, err = run(capsys, "validate", bad)
    assert rc == EXIT_FAILURE and len(out.strip().splitlines()) == 1 and "truncated" in out


def test_extract_unpremultiplies_and_keeps_alpha(capsys, p4d, tmp_path):
    out = tmp_path / "a.png"
    rc, _, _ = run(capsys, "extract", p4d, "--keyframe", 2, "--view", 7, "-o", out)
    assert rc == 0
    img = imread(out)
    with P4DReader(p4d) as r:
        rgb, alpha = r.tile(2, 7, "color"), r.tile(2, 7, "alpha")
    assert img.shape == SIZE + (4,)
    np.testing.assert_array_equal(img[..., 3], alpha)
    # straight colour times alpha gives back the stored premultiplied colour (to rounding) wherever
    # the stored colour is a valid premultiplied value (jpeg noise can push it above alpha)
    re_premul = img[..., :3].astype(np.float64) * alpha[..., None] / 255.0
    valid = (rgb <= alpha[..., None]).all(-1) & (alpha > 0)
    assert valid.sum() > 0.3 * valid.size
    assert np.abs(re_premul - rgb)[valid].max() <= 0.5 + 1e-9
    assert (img[..., :3][(rgb > alpha[..., None]).any(-1) & (alpha > 0)] == 255).any()  # clipped, not wrapped
    assert (img[..., :3][alpha == 0] == 0).all()
    run(capsys, "extract", p4d, "-k", 2, "-v", 7, "--premultiplied", "-o", out)
    np.testing.assert_array_equal(imread(out)[..., :3], rgb)


def test_extract_by_angles_and_depth(capsys, p4d, tmp_path):
    out = tmp_path / "d.png"
    # (14, 9) is nearest to yaw 15 (index 3) and pitch 10 (index 2): view 2 * 5 + 3 = 13
    rc, stdout, _ = run(capsys, "extract", p4d, "-k", 0, "-v", "14,9", "--depth", "-o", out)
    assert rc == 0 and "view 13" in stdout
    d = imread(out)
    assert d.dtype == np.uint16
    with P4DReader(p4d) as r:
        np.testing.assert_array_equal(d, r.tile(0, 13, "depth"))


def test_extract_all(capsys, p4d, tmp_path):
    rc, _, _ = run(capsys, "extract", p4d, "--all", "--depth", "-o", tmp_path / "all")
    assert rc == 0
    files = sorted(os.listdir(tmp_path / "all"))
    assert len(files) == 2 * K * 15 and "k0004_v014_depth.png" in files


def _over(rgb, alpha, bg=128):
    return np.clip(np.rint(rgb + (255.0 - alpha[..., None]) * bg / 255.0), 0, 255).astype(np.uint8)


def test_contact_sheet_layout(capsys, p4d, tmp_path):
    out = tmp_path / "sheet.png"
    rc, _, _ = run(capsys, "contact-sheet", p4d, "--keyframe", 1, "-o", out)
    assert rc == 0
    sheet = imread(out)
    h, w = SIZE
    assert sheet.shape == (3 * h, 5 * w, 3)
    with P4DReader(p4d) as r:
        # top-left = highest pitch, lowest yaw; bottom-right = lowest pitch, highest yaw
        top_left = 2 * 5 + 0
        np.testing.assert_array_equal(sheet[:h, :w], _over(r.tile(1, top_left, "color"), r.tile(1, top_left, "alpha")))
        np.testing.assert_array_equal(sheet[-h:, -w:], _over(r.tile(1, 4, "color"), r.tile(1, 4, "alpha")))
    rc, _, _ = run(capsys, "contact-sheet", p4d, "--view", 3, "-o", out)
    assert rc == 0 and imread(out).shape == (2 * h, 3 * w, 3)  # 5 keyframes in a 3x2 grid


def test_quilt_view_zero_is_bottom_left(capsys, p4d, tmp_path):
    rc, stdout, _ = run(capsys, "quilt", p4d, "-o", tmp_path / "q.png", "--cols", 3, "--rows", 2)
    aspect = SIZE[1] / SIZE[0]
    path = tmp_path / f"q_qs3x2a{aspect:.4g}.png"
    assert rc == 0 and path.exists()
    q = imread(path)
    h, w = SIZE
    assert q.shape == (2 * h, 3 * w, 3)
    with P4DReader(p4d) as r:
        row0 = [1 * 5 + yi for yi in range(5)]  # pitch 0 is grid row 1
        np.testing.assert_array_equal(q[h:, :w], r.tile(0, row0[0], "color"))       # view 0 bottom-left
        np.testing.assert_array_equal(q[h:, w:2 * w], r.tile(0, row0[1], "color"))  # then to the right
        np.testing.assert_array_equal(q[:h, :w], r.tile(0, row0[3], "color"))       # then upward
        np.testing.assert_array_equal(q[:h, w:2 * w], r.tile(0, row0[4], "color"))
        assert (q[:h, 2 * w:] == 0).all()                                           # unused cell
    # a name that already carries the layout is used as is; a wrong aspect is refused
    named = tmp_path / f"n_qs5x1a{aspect:.4g}.png"
    assert run(capsys, "quilt", p4d, "-o", named)[0] == 0 and imread(named).shape == (h, 5 * w, 3)
    rc, _, err = run(capsys, "quilt", p4d, "-o", tmp_path / "n_qs5x1a2.0.png")
    assert rc == EXIT_USAGE and "aspect" in err and not (tmp_path / "n_qs5x1a2.0.png").exists()
    rc, _, err = run(capsys, "quilt", p4d, "-o", tmp_path / "x.png", "--cols", 2, "--rows", 2)
    assert rc == EXIT_USAGE and "holds 4 views" in err


def test_repack_subset_keeps_metadata_consistent(capsys, p4d, tmp_path):
    out = tmp_path / "r.p4d"
    rc, _, err = run(capsys, "repack", p4d, "-o", out, "--keyframes", "0-2", "--yaws", "1-3", "--pitches", "1")
    assert rc == 0
    assert "dropped 2 transitions" in err and "dead end" in err
    with P4DReader(p4d) as src, P4DReader(out) as r:
        assert r.verify() == []
        assert (r.n_keyframes, r.n_views) == (3, 3)
        assert r.meta["grid"]["yaws"] == [-15.0, 0.0, 15.0] and r.meta["grid"]["pitches"] == [0.0]
        g = r.meta["graph"]
        assert g["transitions"] == [[2, 0, 1.0, 0.0]]
        # groups of the 5 source keyframes are [0,0,1,1,2]: group 2 lost all its keyframes
        assert src.meta["keyframes"]["pose_group"] == [0, 0, 1, 1, 2]
        assert g["forced"] == [[-1, 2, -1], [-1, 2, -1], [0, -1, -1]]
        assert r.meta["keyframes"]["times"] == src.meta["keyframes"]["times"][:3]
        # unchanged codec: bytes copied verbatim; new view (0, yaw 1) = old view (pitch 1, yaw 1+1)
        for k in range(3):
            for nv, ov in enumerate((6, 7, 8)):
                for kind in r.kinds:
                    assert r.tile_encoded(k, nv, kind) == src.tile_encoded(k, ov, kind)


def test_repack_to_a_new_codec(capsys, p4d, tmp_path):
    out = tmp_path / "w.p4d"
    rc, _, _ = run(capsys, "repack", p4d, "-o", out, "--codec", "webp", "--quality", 80, "--views", "5-9")
    assert rc == 0
    with P4DReader(p4d) as src, P4DReader(out) as r:
        assert r.codecs["color"] == "webp" and r.meta["tiles"]["quality"]["color"] == 80
        assert r.meta["graph"] == src.meta["graph"] and r.n_views == 5
        a, b = r.tile(3, 2, "color").astype(int), src.tile(3, 7, "color").astype(int)
        assert np.abs(a - b).mean() < 6
        np.testing.assert_array_equal(r.tile(3, 2, "alpha"), src.tile(3, 7, "alpha"))
    rc, _, err = run(capsys, "repack", p4d, "-o", tmp_path / "x.p4d", "--views", "0,6")
    assert rc == EXIT_USAGE and "sub-grid" in err and not (tmp_path / "x.p4d").exists()
    rc, _, err = run(capsys, "repack", p4d, "-o", tmp_path / "x.p4d", "--keyframes", "3-9")
    assert rc == EXIT_USAGE and "outside 0..4" in err


def test_repack_failure_leaves_nothing(capsys, p4d, tmp_path):
    data = bytearray(p4d.read_bytes())
    with P4DReader(p4d) as r:
        off = int(r.index[4, 14, 0]["offset"])  # the very last colour tile is broken
    data[off + 5] ^= 0xFF
    src = tmp_path / "broken.p4d"
    src.write_bytes(data)
    rc, _, err = run(capsys, "repack", src, "-o", tmp_path / "out.p4d", "--codec", "png")
    # found while working (the file opened fine): a failure, not a usage error
    assert rc == EXIT_FAILURE and "crc mismatch in tile (keyframe 4, view 14, color)" in err
    assert sorted(os.listdir(tmp_path)) == ["broken.p4d"]  # no output, no temp, partial or journal


def test_graph_outputs(capsys, p4d, tmp_path):
    assert run(capsys, "graph", p4d, "-o", tmp_path / "g.dot")[0] == 0
    dot = (tmp_path / "g.dot").read_text()
    assert dot.startswith("digraph") and "k0 -> k1;" in dot and "k4 -> k0 [style=dashed" in dot
    assert run(capsys, "graph", p4d, "-o", tmp_path / "g.json")[0] == 0
    g = json.loads((tmp_path / "g.json").read_text())
    assert len(g["nodes"]) == K and sum(e["kind"] == "jump" for e in g["edges"]) == 2
    assert sum(e["kind"] == "next" for e in g["edges"]) == K - 1
    assert run(capsys, "graph", p4d, "-o", tmp_path / "g.png")[0] == 0
    img = imread(tmp_path / "g.png")
    assert img.shape == (800, 800, 3) and (img != 255).any()
    rc, _, err = run(capsys, "graph", p4d, "-o", tmp_path / "g.svg")
    assert rc == EXIT_USAGE and ".dot, .json or .png" in err


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_has_help_and_fails_in_one_line(capsys, tmp_path, sub, p4d):
    rc, out, _ = run(capsys, sub, "--help")
    assert rc == 0 and "usage: p4d " + sub in out
    junk = tmp_path / "junk.p4d"
    junk.write_bytes(os.urandom(500))
    extra = {"extract": ["-k", 0, "-v", 0, "-o", tmp_path / "o.png"], "contact-sheet": ["-o", tmp_path / "o.png"],
             "quilt": ["-o", tmp_path / "o.png"], "repack": ["-o", tmp_path / "o.p4d"],
             "graph": ["-o", tmp_path / "o.dot"], "compare": [p4d]}.get(sub, [])
    for bad, what in ((junk, "not a .p4d file (bad magic"), (tmp_path / "missing.p4d", "no such file")):
        rc, out, err = run(capsys, sub, bad, *extra)
        # validate answers "not sound" (1) for a file it could read; every other unusable input is 2
        assert rc == (EXIT_FAILURE if sub == "validate" and bad == junk else EXIT_USAGE)
        text = (out + err).strip()
        assert len(text.splitlines()) == 1 and "Traceback" not in text and what in text
    assert sorted(os.listdir(tmp_path)) == ["junk.p4d"]  # no output was left behind
    rc, _, err = run(capsys, sub, p4d, "--no-such-flag")
    assert rc == 2 and len(err.strip().splitlines()) == 1


def test_console_script_runs_without_traceback(p4d, tmp_path):
    exe = [sys.executable, "-m", "formats.cli"]
    ok = subprocess.run(exe + ["info", str(p4d), "--json"], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["views"] == 15
    bad = subprocess.run(exe + ["extract", str(p4d), "-k", "99", "-v", "0", "-o", str(tmp_path / "x.png")],
                         capture_output=True, text=True)
    assert bad.returncode == EXIT_USAGE and bad.stderr.strip() == "p4d extract: error: --keyframe 99 is outside 0..4"


def _closed_pipe(argv):
    """Run a command whose stdout reader is already gone (like `cmd | head` once head exits)."""
    r, w = os.pipe()
    os.close(r)  # every write now fails with EPIPE
    try:
        return subprocess.run([sys.executable, "-m", *argv], stdout=w, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(w)


@pytest.mark.parametrize("argv", [["formats.cli", "--help"], ["formats.cli", "info", "P4D"],
                                  ["bake.cli", "--help"], ["player.cli", "--help"]])
def test_a_closed_pipe_is_no_error(p4d, argv):
    res = _closed_pipe([str(p4d) if a == "P4D" else a for a in argv])
    assert res.returncode == 0 and res.stderr == "", (res.returncode, res.stderr[-500:])


# ------------------------------------------------------------------------- unusable inputs: exit 2

def _one_line_error(err, sub):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"p4d {sub}: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("sub", ["info", "validate"])
def test_a_folder_given_as_the_file_says_so(capsys, tmp_path, sub):
    rc, _, err = run(capsys, sub, tmp_path)
    assert rc == EXIT_USAGE
    assert _one_line_error(err, sub) == f"p4d {sub}: error: {tmp_path}: is a folder, not a .p4d file"


def test_a_missing_file_and_a_fifo(capsys, tmp_path):
    rc, _, err = run(capsys, "info", tmp_path / "nope.p4d")
    assert rc == EXIT_USAGE and _one_line_error(err, "info").endswith("nope.p4d: no such file")
    fifo = tmp_path / "pipe.p4d"
    os.mkfifo(fifo)
    rc, _, err = run(capsys, "info", fifo)  # opening a FIFO for reading would block forever
    assert rc == EXIT_USAGE and _one_line_error(err, "info").endswith("pipe.p4d: not a regular file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file(capsys, p4d, tmp_path):
    locked = tmp_path / "locked.p4d"
    locked.write_bytes(p4d.read_bytes())
    locked.chmod(0)
    rc, _, err = run(capsys, "info", locked)
    assert rc == EXIT_USAGE and _one_line_error(err, "info").endswith("locked.p4d: cannot be read (permission denied)")


def test_a_file_the_reader_rejects_on_open(capsys, p4d, tmp_path):
    cut = tmp_path / "cut.p4d"
    cut.write_bytes(p4d.read_bytes()[:1000])
    rc, _, err = run(capsys, "info", cut)
    assert rc == EXIT_USAGE and "cut.p4d: header file_size (offset 40)" in _one_line_error(err, "info")
    rc, out, _ = run(capsys, "validate", cut)  # the same file is validate's "not sound"
    assert rc == EXIT_FAILURE and "truncated" in out


# ------------------------------------------------------------------ outputs: whole or absent

def _writers(p4d, out_dir):
    """(subcommand, argv) for every command that writes, with its output under ``out_dir``."""
    return [("extract", ["extract", p4d, "-k", 0, "-v", 0, "-o", out_dir / "t.png"]),
            ("extract", ["extract", p4d, "--all", "-o", out_dir / "tiles"]),
            ("contact-sheet", ["contact-sheet", p4d, "-o", out_dir / "s.png"]),
            ("quilt", ["quilt", p4d, "-o", out_dir / "q.png"]),
            ("repack", ["repack", p4d, "-o", out_dir / "r.p4d"]),
            ("graph", ["graph", p4d, "-o", out_dir / "g.dot"]),
            ("graph", ["graph", p4d, "-o", out_dir / "g.png"])]


def test_an_output_folder_that_cannot_be_used(capsys, p4d, tmp_path):
    # Running as root, permissions cannot make a folder unwritable: a path whose parent is a
    # regular file can never be written, for anyone.
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for sub, argv in _writers(p4d, blocker):
        rc, _, err = run(capsys, *argv)
        line = _one_line_error(err, sub)
        want = "cannot create the output folder (Not a directory)" if "--all" in argv else \
            f"{blocker}: output folder is not a folder"
        assert rc == EXIT_USAGE and want in line, (argv, line)
    for sub, argv in _writers(p4d, tmp_path / "missing"):
        if "--all" in argv:
            continue  # --all creates its folder
        rc, _, err = run(capsys, *argv)
        assert rc == EXIT_USAGE and "output folder does not exist" in _one_line_error(err, sub), argv
    assert sorted(os.listdir(tmp_path)) == ["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder whatever its mode")
def test_a_read_only_output_folder(capsys, p4d, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        for sub, argv in _writers(p4d, ro):
            rc, _, err = run(capsys, *argv)
            assert rc == EXIT_USAGE and "cannot be written" in _one_line_error(err, sub), argv
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o700)


def test_a_failed_image_write_leaves_nothing(capsys, p4d, tmp_path, monkeypatch):
    def half_written(path, img):
        pathlib.Path(path).write_bytes(b"\x89PNG half")
        return False
    monkeypatch.setattr(cv2, "imwrite", half_written)
    rc, _, err = run(capsys, "extract", p4d, "-k", 0, "-v", 0, "-o", tmp_path / "t.png")
    assert rc == EXIT_FAILURE and _one_line_error(err, "extract").endswith("t.png: opencv could not write the image")
    assert os.listdir(tmp_path) == []


def test_a_full_disk_while_writing_leaves_nothing(capsys, p4d, tmp_path, monkeypatch):
    def disk_full(self, text, *args, **kwargs):
        with open(self, "w") as f:
            f.write(text[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
    monkeypatch.setattr(pathlib.Path, "write_text", disk_full)
    rc, _, err = run(capsys, "graph", p4d, "-o", tmp_path / "g.dot")
    assert rc == EXIT_FAILURE and "No space left on device" in _one_line_error(err, "graph")
    assert os.listdir(tmp_path) == []


def test_an_interrupted_repack_leaves_nothing(capsys, p4d, tmp_path, monkeypatch):
    calls = []
    real = P4DWriter.add_encoded

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 20:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)
    monkeypatch.setattr(P4DWriter, "add_encoded", interrupted)
    rc, _, err = run(capsys, "repack", p4d, "-o", tmp_path / "r.p4d")
    assert rc == EXIT_INTERRUPTED and err.strip().endswith("p4d repack: interrupted")
    assert len(calls) == 20 and os.listdir(tmp_path) == []
