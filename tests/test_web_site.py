"""`player web` without a browser: the site it writes, the browser copy of raw+zstd portraits,
the single-file bundle, its one-line errors, and the Python player's --keyframe still."""

import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from formats import P4DReader
from player import site
from player.playback import PlayConfig, Playback
from player.render import RenderConfig
from testkit.sphere_p4d import write_sphere

REPO = site.WEB.parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "player.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


@pytest.fixture(scope="module")
def sphere(tmp_path_factory):
    return write_sphere(tmp_path_factory.mktemp("web") / "sphere.p4d", size=32, n_keyframes=3)


def test_site_folder_holds_page_modules_and_the_portrait_byte_for_byte(sphere, tmp_path):
    r = run_cli("web", sphere, "-o", tmp_path / "site")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "site"
    assert (out / "sphere.p4d").read_bytes() == sphere.read_bytes()  # jpeg/png tiles: browsers read them
    html = (out / "index.html").read_text()
    assert '<canvas id="p4d"' in html and 'src="p4d/main.js"' in html and "{{" not in html
    cfg = json.loads(re.search(r'id="p4d-config">(.*?)</script>', html).group(1))
    assert cfg == {"file": "sphere.p4d"}
    names = {p.name for p in (out / "p4d").iterdir()}
    assert {"main.js", "reader.js", "renderer.js", "shaders.js", "walker.js", "rng.js", "p4d.css"} <= names
    # No third-party code: every module imports only the project's own modules.
    for p in (out / "p4d").glob("*.js"):
        for spec in re.findall(r'^import .* from "([^"]+)";$', p.read_text(), re.M):
            assert spec.startswith("./") and (out / "p4d" / spec[2:]).exists(), (p.name, spec)
        assert "http://" not in p.read_text() and "https://" not in p.read_text()


def test_raw_zstd_portrait_gets_a_lossless_png_copy(tmp_path):
    src = write_sphere(tmp_path / "raw.p4d", size=24, n_keyframes=2,
                       codecs={"color": "raw+zstd", "alpha": "raw+zstd", "depth": "raw+zstd"}, depth_scale=2)
    out, recoded = site.build(site.SiteConfig(src, tmp_path / "site", quiet=True))
    assert recoded
    with P4DReader(src) as a, P4DReader(out / "raw.p4d") as b:
        assert b.codecs == {"color": "png", "alpha": "png", "depth": "png"}
        assert b.depth_scale == 2 and b.has_preview
        for k in range(a.n_keyframes):
            for v in range(a.n_views):
                for kind in a.kinds:
                    assert np.array_equal(a.tile(k, v, kind), b.tile(k, v, kind)), (k, v, kind)
        assert b.meta["graph"] == a.meta["graph"] and b.meta["grid"] == a.meta["grid"]


def test_a_chained_raw_zstd_portrait_stays_chained_in_its_png_copy(tmp_path):
    src = write_sphere(tmp_path / "raw.p4d", size=24, n_keyframes=5, chain=3, quality=85,
                       codecs={"color": "webp", "alpha": "raw+zstd", "depth": "raw+zstd"})
    out, recoded = site.build(site.SiteConfig(src, tmp_path / "site", quiet=True))
    assert recoded
    with P4DReader(src) as a, P4DReader(out / "raw.p4d") as b:
        assert b.codecs == {"color": "webp", "alpha": "png", "depth": "png"} and b.chain == 3
        np.testing.assert_array_equal(b.index["flags"], a.index["flags"])  # re-coded kinds are predicted anew
        assert b.predicted(1, 0, "alpha") and b.predicted(4, 2, "depth") and not b.predicted(3, 0, "depth")
        for k in range(a.n_keyframes):
            for v in range(a.n_views):
                assert b.tile_encoded(k, v, "color") == a.tile_encoded(k, v, "color")  # copied as is
                for kind in a.kinds:
                    assert np.array_equal(a.tile(k, v, kind), b.tile(k, v, kind)), (k, v, kind)


def test_single_file_bundles_every_module_and_the_portrait(sphere, tmp_path):
    out = tmp_path / "one.html"
    r = run_cli("web", sphere, "-o", out, "--single-file")
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert "<script type=\"module\">" in html and 'id="p4d-data"' in html
    script = re.search(r'<script type="module">\n(.*?)\n</script>', html, re.S).group(1)
    assert not re.search(r"^(import|export)\b", script, re.M)
    assert len(re.findall(r"^const __p4d_\w+ = ", script, re.M)) == len(site.modules())
    import base64
    data = re.search(r'id="p4d-data">([^<]*)<', html).group(1)
    assert base64.b64decode(data) == sphere.read_bytes()


@pytest.mark.parametrize("args, needle", [
    (["missing.p4d", "-o", "SITE"], "no such file"),
    (["{sphere}", "-o", "{tmp}/x.txt", "--single-file"], "give a name ending in .html"),
    (["{sphere}", "-o", "{tmp}/full"], "not an empty folder"),
    (["{tmp}/junk.p4d", "-o", "{tmp}/s2"], "not a playable .p4d"),
    (["{sphere}"], "required"),
])
def test_bad_input_is_one_line_exit_2(sphere, tmp_path, args, needle):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "junk.p4d").write_bytes(b"not a portrait" * 20)
    r = run_cli("web", *[a.format(sphere=sphere, tmp=tmp_path) for a in args])
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "s2").exists() and not (tmp_path / "x.txt").exists()


def test_help_names_the_page_contract():
    r = run_cli("web", "--help")
    assert r.returncode == 0 and "--single-file" in r.stdout and "paused=1" in r.stdout
    assert "player web FILE.p4d -o SITE/" in run_cli("--help").stdout


def test_keyframe_still_is_that_one_state(sphere, tmp_path):
    out = tmp_path / "still.png"
    r = run_cli(sphere, "--mode", "fixed", "--yaw", "4", "--pitch", "-2", "--keyframe", "2", "--size", "48",
                "--export", out, "-q")
    assert r.returncode == 0 and "one still" in r.stdout, r.stderr
    with P4DReader(sphere) as reader:
        pb = Playback(reader, PlayConfig(mode="fixed", yaw=4, pitch=-2, keyframe=2, prefetch=False,
                                         render=RenderConfig(size=48)))
        assert pb.walker.streams() == [(2, 2, 0.0, 1.0)]  # the last keyframe: its natural successor is itself
        want = np.ascontiguousarray(pb.render()[::-1, :, :3])
        pb.close()
    assert np.array_equal(cv2.imread(str(out))[..., ::-1], want)
    r = run_cli(sphere, "--keyframe", "3", "--export", tmp_path / "x.png")
    assert r.returncode == 2 and "--keyframe must be between 0 and 2" in r.stderr
