"""The browser player in headless Chromium (software WebGL2), against the Python player on the
same file: fixed states frame by frame, the walk keyframe by keyframe, hostile files, and the
two ways a server can deliver the portrait (with and without HTTP range requests).

Needs the `playwright` package and a Chromium (`.ci/run` installs both: `apt-get install
chromium`, `pip install playwright`; never `playwright install`); skips cleanly without them.
One browser and one pair of servers per module; tiles are 96 px so a frame draws fast on
SwiftShader."""

from __future__ import annotations

import base64
import os
import shutil

import cv2
import numpy as np
import pytest

from formats import P4DReader
from player import site
from player.playback import PlayConfig, Playback, still
from player.light import Light
from player.render import RenderConfig
from testkit.fuzz import forge
from testkit.sphere_p4d import write_sphere
from testkit.static_servers import serve

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = next((p for p in (os.environ.get("P4D_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p and os.path.exists(p)), None)
if CHROMIUM is None:
    pytest.skip("no chromium to run the page in (apt-get install chromium)", allow_module_level=True)

SIZE, OUT = 96, 160
BACKGROUND = np.floor(255 * np.array(RenderConfig().background) + 0.5)
GRID_STATES = [(0, 0.0, -8.0), (2, 12.0, 8.0), (3, -12.0, -8.0)]  # (keyframe, yaw, pitch) on grid views
BETWEEN_STATES = [(1, 5.0, 2.0), (2, -6.0, 0.0), (3, 7.5, -3.0), (0, -3.0, 5.0)]


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    src = write_sphere(root / "sphere.p4d", size=SIZE, n_keyframes=4)
    out, _ = site.build(site.SiteConfig(src, root / "site", quiet=True))
    write_sphere(out / "quarter.p4d", size=SIZE, n_keyframes=4, depth_scale=4)  # the 1.0 bake's depth
    write_sphere(out / "eight.p4d", size=SIZE, n_keyframes=4, depth_scale=4, depth_bits=8,  # the 1.1 bake's
                 codecs={"color": "webp", "alpha": "webp", "depth": "webp"})
    write_sphere(out / "eight_png.p4d", size=SIZE, n_keyframes=4, depth_scale=4, depth_bits=8,
                 codecs={"color": "jpeg", "alpha": "png", "depth": "png"})
    write_sphere(out / "walk.p4d", size=24, n_keyframes=12)
    write_sphere(out / "relit.p4d", size=SIZE, n_keyframes=4, normal_scale=2)  # format 1.2
    write_sphere(out / "chained.p4d", size=SIZE, n_keyframes=4, depth_scale=4, depth_bits=8, normal_scale=4,
                 chain=3, codecs={"color": "webp", "alpha": "webp", "depth": "webp"})  # format 1.3, the bake's coding
    write_sphere(out / "chained_png.p4d", size=SIZE, n_keyframes=4, chain=2,  # lossless chains, 16-bit depth
                 codecs={"color": "png", "alpha": "png", "depth": "png"})
    data3 = bytearray((out / "chained.p4d").read_bytes())
    with P4DReader(out / "chained.p4d") as r:
        ioff3, rec3 = int(r._index_offset), (3 * r.n_views + 1) * len(r.kinds) + 1  # keyframe 3 (a chain start), alpha
        assert r.predicted(2, 1, "alpha") and not r.predicted(3, 1, "alpha")
    data3[ioff3 + rec3 * 24 + 22] = 1  # predicted where the chain starts: a hostile file
    (out / "badchain.p4d").write_bytes(forge(data3))
    data = bytearray(src.read_bytes())
    (out / "truncated.p4d").write_bytes(data[:-100])
    with P4DReader(src) as r:
        ioff = int(r._index_offset)
        rec = r.index[1, 2, 0]  # keyframe 1, view 2, colour
        tile_off = int(rec["offset"])
    for name, at in (("badheader.p4d", 30), ("badindex.p4d", ioff + 30), ("badmeta.p4d", len(data) - 3)):
        bad = bytearray(data)
        bad[at] ^= 0xFF
        (out / name).write_bytes(bad)
    bad = bytearray(data)
    bad[tile_off + 40] ^= 0xFF
    (out / "badtile.p4d").write_bytes(bad)
    return out


@pytest.fixture(scope="module")
def servers(site_dir):
    plain, ranged = serve(site_dir, ranges=False), serve(site_dir, ranges=True)
    yield {"plain": f"http://127.0.0.1:{plain.server_port}/", "range": f"http://127.0.0.1:{ranged.server_port}/"}
    plain.shutdown()
    ranged.shutdown()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        yield b
        b.close()


def open_page(browser, url, until="ready", timeout=30000):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("document.body.dataset.state !== 'loading'", timeout=timeout)
    state = page.evaluate("document.body.dataset.state")
    assert state == until, (state, page.evaluate("document.getElementById('p4d-error').textContent"), errors)
    return page


def canvas_rgb(page) -> np.ndarray:
    url = page.evaluate("document.getElementById('p4d').toDataURL('image/png')")
    png = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    return cv2.imdecode(png, cv2.IMREAD_COLOR)[..., ::-1]


def python_still(path, k, yaw, pitch, size, light=None) -> np.ndarray:
    with P4DReader(path) as reader:
        return still(reader, k, yaw, pitch, size, light)


def psnr_foreground(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR over the pixels where either image differs from the background."""
    fg = (np.abs(a - BACKGROUND).sum(-1) > 0) | (np.abs(b - BACKGROUND).sum(-1) > 0)
    assert fg.mean() > 0.2  # the subject is in the frame
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2)[fg].mean()
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


@pytest.mark.parametrize("name", ["sphere.p4d", "quarter.p4d", "eight.p4d", "eight_png.p4d", "chained.p4d",
                                  "chained_png.p4d"])
@pytest.mark.parametrize("states, floor", [(GRID_STATES, 40.0), (BETWEEN_STATES, 33.0)], ids=["grid", "between"])
def test_fixed_states_match_the_python_player(browser, servers, site_dir, states, floor, name):
    for k, yaw, pitch in states:
        for size in (OUT, SIZE):
            page = open_page(browser, f"{servers['range']}?file={name}&k={k}&yaw={yaw}&pitch={pitch}&paused=1&size={size}")
            got = canvas_rgb(page)
            page.close()
            want = python_still(site_dir / name, k, yaw, pitch, size)
            assert got.shape == want.shape == (size, size, 3)
            db = psnr_foreground(got, want)
            print(f"{name} k={k} yaw={yaw} pitch={pitch} size={size}: {db:.1f} dB")
            assert db >= floor, (name, k, yaw, pitch, size, db)


def test_same_seed_same_keyframes_as_the_python_walk(browser, servers, site_dir):
    seed, seconds = 5, 20.0
    with P4DReader(site_dir / "walk.p4d") as reader:
        pb = Playback(reader, PlayConfig(mode="orbit", seed=seed, prefetch=False))
        want = [(0.0, pb.walker.main.k)]
        pb.walker.push_handlers(on_keyframe=lambda k: want.append((pb.walker.time, k)),
                                on_jump=lambda kind, src, dst: want.append((pb.walker.time, dst)))
        for _ in range(int(seconds * 60)):
            pb.step(1 / 60)
        jumps = pb.walker.jumps
        pb.close()
    page = open_page(browser, f"{servers['plain']}?file=walk.p4d&mode=orbit&seed={seed}")
    page.wait_for_function(f"window.p4d.state().time >= {seconds}", timeout=90000, polling=250)
    got = [(e["t"], e["k"]) for e in page.evaluate("window.p4d.trace()")]
    page.close()
    cut = seconds - 0.01  # the last tick's time differs in its last bits from 20
    want, got = [e for e in want if e[0] < cut], [e for e in got if e[0] < cut]
    assert jumps >= 3 and len(want) > 200
    assert [k for _, k in got] == [k for _, k in want]
    assert got == want  # the same ticks: the same times to the bit


@pytest.mark.parametrize("name, needle", [("truncated.p4d", "truncated"), ("badheader.p4d", "header crc mismatch"),
                                          ("badindex.p4d", "index crc mismatch"),
                                          ("badmeta.p4d", "metadata crc mismatch"), ("nothere.p4d", "HTTP 404"),
                                          ("badchain.p4d", "index record 77 (tile 3, 1, alpha) is predicted, but "
                                                           "keyframe 3 starts a chain (meta.tiles.chain = 3)")])
@pytest.mark.parametrize("server", ["plain", "range"])
def test_a_bad_file_ends_in_an_error_on_the_page(browser, servers, name, needle, server):
    page = open_page(browser, f"{servers[server]}?file={name}", until="error")
    msg = page.evaluate("document.getElementById('p4d-error').textContent")
    page.close()
    assert needle in msg, msg


def test_a_damaged_tile_is_skipped_with_a_notice_and_playback_goes_on(browser, servers):
    page = open_page(browser, f"{servers['range']}?file=badtile.p4d&k=1&yaw=12&pitch=-8")
    page.wait_for_function("window.p4d.state().time > 0.5", timeout=30000)
    damaged = page.evaluate("window.p4d.damaged()")
    notice = page.evaluate("document.getElementById('p4d-notice').textContent")
    page.close()
    assert [(d["k"], d["v"]) for d in damaged] == [(1, 2)] and "crc mismatch" in damaged[0]["reason"]
    assert "keyframe 1 view 2 is damaged" in notice


@pytest.mark.parametrize("server, mode", [("plain", "stream"), ("range", "range")])
def test_both_servers_play(browser, servers, server, mode):
    page = open_page(browser, f"{servers[server]}?seed=2")
    page.wait_for_function("window.p4d.state().time > 1", timeout=30000)
    state = page.evaluate("window.p4d.state()")
    stats = page.evaluate("window.p4d.stats()")
    page.close()
    assert state["source"] == mode and state["mode"] == "free" and len(stats["draw_ms"]) > 5


def test_single_file_page_plays_from_disk(browser, site_dir, tmp_path):
    out, _ = site.build(site.SiteConfig(site_dir / "sphere.p4d", tmp_path / "one.html", single_file=True, quiet=True))
    page = open_page(browser, out.as_uri() + "?k=1&yaw=0&pitch=8&paused=1")
    got = canvas_rgb(page)
    page.close()
    assert psnr_foreground(got, python_still(site_dir / "sphere.p4d", 1, 0.0, 8.0, SIZE)) >= 40


def test_rng_matches_python(browser, servers):
    page = open_page(browser, f"{servers['range']}?paused=1")
    got = page.evaluate("""async () => {
        const { Pcg32 } = await import('./p4d/rng.js');
        const r = new Pcg32(42, 54), s = new Pcg32(7, 1);
        return [[0, 1, 2, 3, 4].map(() => r.nextU32()), [0, 1, 2].map(() => s.random())];
    }""")
    page.close()
    from player.rng import Pcg32
    assert got[0] == [0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b]
    s = Pcg32(7, 1)
    assert got[1] == [s.random() for _ in range(3)]


@pytest.mark.parametrize("s, guided", [(2, False), (4, False), (2, True), (4, True)])
def test_depth_upsampling_matches_the_numpy_twin(browser, servers, site_dir, s, guided):
    from formats.codecs import dequantize_depth
    from formats.p4d import downscale_depth
    from testkit.naive.decode import upsample_depth
    from testkit.sphere_p4d import trace
    from formats.camera import Intrinsics
    h, w = 37, 45  # sizes s does not divide: the clamped last samples
    rgba, depth = trace(6.0, -3.0, Intrinsics.from_fov(30.0, w, h))
    alpha = rgba[..., 3] if guided else None
    small = dequantize_depth(np.round(downscale_depth(depth, s) * 50000).astype(np.uint16), 0.0, 65534 / 50000)
    small[small < 0] = 0
    want = upsample_depth(small, s, h, w, alpha=alpha)
    page = open_page(browser, f"{servers['range']}?paused=1")
    got = page.evaluate("""async ([small, s, h, w, alpha]) => {
        const { upsampleDepth } = await import('./p4d/tiles.js');
        return Array.from(upsampleDepth(Float32Array.from(small), s, h, w, 0.05, alpha && Uint8Array.from(alpha)));
    }""", [small.ravel().tolist(), s, h, w, None if alpha is None else alpha.ravel().tolist()])
    page.close()
    got = np.asarray(got, np.float32).reshape(h, w)
    assert (want > 0).mean() > 0.3
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


def test_drag_wheel_and_space_move_zoom_and_pause(browser, servers):
    page = open_page(browser, f"{servers['range']}?mode=fixed&yaw=0&pitch=0")
    box = page.locator("#p4d").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx - 40, cy + 20, steps=4)
    page.mouse.up()
    page.mouse.wheel(0, -300)
    page.keyboard.press(" ")
    st = page.evaluate("window.p4d.state()")
    page.close()
    assert st["yaw"] == pytest.approx(0.3 * 40) and st["pitch"] == pytest.approx(0.3 * 20)  # drag: 0.3 deg / px
    assert st["zoom"] == pytest.approx(1.1 ** 3) and st["paused"]


@pytest.mark.slow
def test_a_baked_head_matches_the_python_player(browser, small_p4d, tmp_path):
    # The session's small bake of the synthetic head (tests/conftest.py): webp colour and alpha
    # (createImageBitmap's path) and depth at 1/4, as `bake` writes them.
    out, _ = site.build(site.SiteConfig(small_p4d, tmp_path / "site", quiet=True))
    srv = serve(out, ranges=True)
    with P4DReader(small_p4d) as r:
        ys, ps, n = r.meta["grid"]["yaws"], r.meta["grid"]["pitches"], r.n_keyframes
    try:
        for k, yaw, pitch, floor in ((1, ys[1], ps[1], 40.0), (n - 2, ys[3], ps[0], 40.0),
                                     (n // 2, 0.5 * (ys[1] + ys[2]), 0.5 * (ps[0] + ps[1]), 33.0),
                                     (2, 0.7 * ys[2] + 0.3 * ys[3], 0.4 * ps[1] + 0.6 * ps[2], 33.0)):
            page = open_page(browser, f"http://127.0.0.1:{srv.server_port}/?k={k}&yaw={yaw}&pitch={pitch}&paused=1")
            got = canvas_rgb(page)
            page.close()
            db = psnr_foreground(got, python_still(small_p4d, k, yaw, pitch, None))
            print(f"baked head k={k} yaw={yaw:.2f} pitch={pitch:.2f}: {db:.1f} dB")
            assert db >= floor, (k, yaw, pitch, db)
    finally:
        srv.shutdown()


def test_with_ranges_only_the_tiles_a_view_needs_are_fetched(browser, site_dir):
    srv = serve(site_dir, ranges=True)
    try:
        page = open_page(browser, f"http://127.0.0.1:{srv.server_port}/?k=0&yaw=0&pitch=-8&paused=1")
        page.wait_for_timeout(500)  # what it prefetches too
        page.close()
        size = (site_dir / "sphere.p4d").stat().st_size
        # Past the first 64 KiB read (header, preview): one view of 6 at a grid view, in the
        # keyframes the walk may show next (here all 4): a sixth of the tiles.
        assert 0 < srv.range_bytes - (64 << 10) < 0.3 * size, (srv.range_bytes, size)
    finally:
        srv.shutdown()


def test_a_relit_portrait_matches_the_python_player(browser, servers, site_dir):
    """?light= relights as `player --light` does (format 1.2); window.p4d.setLight moves it; a file
    without normals plays in its light and says why once."""
    for k, yaw, pitch, light in ((0, 0.0, -8.0, (-40.0, 10.0)), (2, 5.0, 2.0, (70.0, -20.0))):
        page = open_page(browser, f"{servers['range']}?file=relit.p4d&k={k}&yaw={yaw}&pitch={pitch}&paused=1"
                                  f"&size={OUT}&light={light[0]},{light[1]}")
        got = canvas_rgb(page)
        assert page.evaluate("window.p4d.light()") == {"yaw": light[0], "pitch": light[1], "strength": None}
        want = python_still(site_dir / "relit.p4d", k, yaw, pitch, OUT, Light(*light))
        plain = python_still(site_dir / "relit.p4d", k, yaw, pitch, OUT)
        db, db_plain = psnr_foreground(got, want), psnr_foreground(plain, want)
        print(f"relit k={k} yaw={yaw} pitch={pitch} light={light}: {db:.1f} dB (the unrelit frame: {db_plain:.1f} dB)")
        assert db >= 38.0 and db_plain < db - 10, (db, db_plain)
        # the light moved on the page: the next frame is the Python player's at that light
        assert page.evaluate("window.p4d.setLight(10, 30)") is True
        page.wait_for_timeout(300)
        db2 = psnr_foreground(canvas_rgb(page), python_still(site_dir / "relit.p4d", k, yaw, pitch, OUT, Light(10.0, 30.0)))
        assert db2 >= 38.0, db2
        page.close()
    page = open_page(browser, f"{servers['range']}?file=sphere.p4d&k=0&yaw=0&pitch=-8&paused=1&light=30,0")
    assert "no normals" in page.evaluate("document.getElementById('p4d-notice').textContent")
    assert page.evaluate("window.p4d.light()") is None
    page.close()


@pytest.mark.parametrize("name", ["chained.p4d", "chained_png.p4d"])
def test_a_chained_file_decodes_to_the_python_readers_samples(browser, servers, site_dir, name):
    """Format 1.3: the page's TileStore walks each chain as formats/reader.py does, at random
    keyframes (a walk back to the chain's start) and forward; lossless kinds give the same samples,
    colour the same within the browser's and opencv's webp decoders."""
    order = [(2, 4), (1, 4), (3, 0), (2, 0), (0, 5), (1, 5), (2, 5), (3, 5)]
    page = open_page(browser, f"{servers['range']}?file={name}&paused=1")
    got = page.evaluate("""async ([name, order]) => {
        const { P4DReader } = await import('./p4d/reader.js');
        const { HttpSource } = await import('./p4d/source.js');
        const { TileStore } = await import('./p4d/tiles.js');
        const r = await (await new P4DReader(await new HttpSource(name).open()).openHeader()).openIndex();
        const store = new TileStore(r, 4, () => {});
        const out = [];
        for (const [k, v] of order) {
            const before = store.chunks;
            const s = await store._chained(k, v);
            const o = { k, v, chunks: store.chunks - before };
            for (const kind of r.layout.kinds) o[kind] = Array.from(s[kind]);
            out.push(o);
        }
        return out;
    }""", [name, order])
    page.close()
    with P4DReader(site_dir / name) as r:
        kinds, chain = r.kinds, r.chain
        for o in got:
            k, v = o["k"], o["v"]
            for kind in kinds:
                want = r.tile_stored(k, v, kind).ravel()
                have = np.asarray(o[kind], want.dtype)
                if kind == "color" and r.codecs["color"] == "webp":
                    assert np.abs(have.astype(int) - want).mean() < 1.0, (name, k, v)
                else:
                    np.testing.assert_array_equal(have, want, err_msg=f"{name} {k} {v} {kind}")
            assert o["chunks"] <= chain * len(kinds)
    # played forward a keyframe at a time, one chunk per kind; a jump walks back to its chain's start
    keyframes = [3, 2, 1, 3, 1, 1, 1, 1] if name == "chained.p4d" else [1, 2, 2, 1, 1, 1, 1, 1]
    assert [o["chunks"] for o in got] == [n * len(kinds) for n in keyframes]
