"""`bake CKPT -o OUT.p4d` end to end on the small synthetic subject."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, SMALL_BAKE, run_cli
from formats import P4DReader
from formats.camera import Camera, Intrinsics, orbit_pose
from formats.codecs import dequantize_depth
from formats.p4d import downscale_depth


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_small_bake_info_counts(small_p4d):
    info = json.loads(run_cli("p4d", "info", str(small_p4d), "--json").stdout)
    assert info["views"] == 15
    assert info["keyframes"] >= 18
    assert info["transitions"] >= 1
    assert info["pose_groups"] == 3
    assert run_cli("p4d", "validate", str(small_p4d)).returncode == 0


def test_tiles_match_direct_renders(small_p4d, synth_dir):
    from bake.fields.registry import load_field

    field = load_field(synth_dir / "subject.ckpt")
    with P4DReader(small_p4d) as r:
        meta = r.meta
        grid = meta["grid"]
        intr = Intrinsics.from_dict(grid["intrinsics"])
        n_yaw = len(grid["yaws"])
        near, far = grid["depth"]["near"], grid["depth"]["far"]
        for k, v in [(0, 7), (r.n_keyframes // 2, 0), (r.n_keyframes - 1, r.n_views - 1)]:
            yaw, pitch = grid["yaws"][v % n_yaw], grid["pitches"][v // n_yaw]
            cam = Camera(intr, orbit_pose(yaw, pitch, grid["radius"], grid["center"]))
            rgb, alpha, depth = field.render(cam, np.asarray(meta["keyframes"]["expressions"][k], np.float32))
            want_rgb = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
            assert psnr(r.tile(k, v, "color"), want_rgb) >= 38.0
            np.testing.assert_array_equal(r.tile(k, v, "alpha"), np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8))
            got_depth = dequantize_depth(r.tile(k, v, "depth"), near, far)
            depth = downscale_depth(depth, r.depth_scale)
            hit = depth > 0
            assert np.array_equal(got_depth > 0, hit)
            # 8-bit depth (the default, format 1.1): within half a step of (far - near) / 254
            step = (far - near) / (254 if r.depth_bits == 8 else 65534)
            assert r.depth_bits == 8 and np.max(np.abs(got_depth[hit] - depth[hit])) <= step / 2 + (far - near) / 65534
        # keyframes follow the capture's expression sequence at the bake rate
        times = np.asarray(meta["keyframes"]["times"])
        np.testing.assert_allclose(np.diff(times), 1 / 5.0, atol=1e-6)
        exprs = np.asarray(meta["keyframes"]["expressions"])
        cap = field.capture
        for k in (0, len(times) // 2):
            want = [np.interp(cap.times[0] + times[k], cap.times, cap.expressions[:, c])
                    for c in range(cap.expressions.shape[1])]
            np.testing.assert_allclose(exprs[k], want, atol=1e-5)


def test_graph_is_connected_and_groups_are_consistent(small_p4d):
    with P4DReader(small_p4d) as r:
        meta = r.meta
    n = len(meta["keyframes"]["times"])
    g = meta["graph"]
    nxt = {i: ({i + 1} if i + 1 < n else set()) for i in range(n)}
    for s, d, p, _ in g["transitions"]:
        assert 0 <= d < s < n and 0 < p <= 1
        nxt[s].add(d)
    for start in range(n):
        seen, stack = {start}, [start]
        while stack:
            for j in nxt[stack.pop()] - seen:
                seen.add(j)
                stack.append(j)
        assert len(seen) == n, f"keyframe {start} reaches only {len(seen)} of {n}"
    labels = meta["keyframes"]["pose_group"]
    assert sorted(set(labels)) == [0, 1, 2]
    for k, row in enumerate(g["forced"]):
        for grp, target in enumerate(row):
            assert (target == -1) == (labels[k] == grp)
            if target != -1:
                assert labels[target] == grp


def _bake_cmd(synth_dir, out, *extra):
    return [sys.executable, "-m", "bake.cli", str(synth_dir / "subject.ckpt"), "-o", str(out), *SMALL_BAKE, *extra]


def _small_config():
    """The BakeConfig that the CLI builds from SMALL_BAKE (same fingerprint, so same bytes)."""
    from bake.job.config import BakeConfig
    return BakeConfig(views=(5, 3), size=128, fps=5.0)


class _StopAfter:
    """``run_bake``'s ``on_tile`` hook: stop the bake right after the n-th tile (as Ctrl-C would)."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, count: int) -> None:
        if count == self.n:
            raise KeyboardInterrupt


def _resume_counting(synth_dir, out) -> int:
    """Resume the bake at ``out`` in-process; returns how many tiles the resume rendered."""
    from bake.fields.base import file_digest
    from bake.fields.registry import load_field
    from bake.job.run import run_bake

    ckpt = synth_dir / "subject.ckpt"
    counts = []
    run_bake(load_field(ckpt), _small_config(), out, source_digest=file_digest(ckpt), resume=True, quiet=True,
             on_tile=counts.append)
    return len(counts)


# Stopped after exactly this many (keyframe, view) tiles: not a keyframe boundary (5x3 views).
STOP_AFTER = 23
_KILL_AFTER = """
import os, signal, sys
from bake.fields.base import file_digest
from bake.fields.registry import load_field
from bake.job.config import BakeConfig
from bake.job.run import run_bake

ckpt, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

def kill(count):
    if count == n:  # a hard kill: no cleanup, no flush beyond what each tile already did
        os.kill(os.getpid(), signal.SIGKILL)

run_bake(load_field(ckpt), BakeConfig(views=(5, 3), size=128, fps=5.0), out,
         source_digest=file_digest(ckpt), quiet=True, on_tile=kill)
"""


def test_killed_bake_resumes_to_identical_bytes(synth_dir, small_p4d, tmp_path):
    # SIGKILL from inside the bake right after tile STOP_AFTER reached the partial: deterministic,
    # whatever the machine's speed.
    out = tmp_path / "killed.p4d"
    partial = tmp_path / "killed.p4d.partial"
    proc = subprocess.run([sys.executable, "-c", _KILL_AFTER, str(synth_dir / "subject.ckpt"), str(out),
                           str(STOP_AFTER)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not out.exists() and partial.exists()
    with P4DReader(small_p4d) as r:
        total = r.n_keyframes * r.n_views
    # The resume renders exactly the tiles the kill left undone (a resume that starts over fails
    # here), and the file is the uninterrupted bake's, byte for byte.
    assert _resume_counting(synth_dir, out) == total - STOP_AFTER
    assert out.read_bytes() == small_p4d.read_bytes()
    assert not partial.exists() and not (tmp_path / "killed.p4d.partial.bake.json").exists()


def test_interrupted_bake_resumes_from_the_cli_to_identical_bytes(synth_dir, small_p4d, tmp_path):
    from bake.fields.base import file_digest
    from bake.fields.registry import load_field
    from bake.job.run import run_bake

    ckpt = synth_dir / "subject.ckpt"
    out = tmp_path / "stopped.p4d"
    partial = tmp_path / "stopped.p4d.partial"
    with pytest.raises(KeyboardInterrupt):
        run_bake(load_field(ckpt), _small_config(), out, source_digest=file_digest(ckpt), quiet=True,
                 on_tile=_StopAfter(STOP_AFTER))
    assert not out.exists() and partial.exists()
    r = run_cli("bake", str(ckpt), "-o", str(out), *SMALL_BAKE, "--resume", "--quiet")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)  # --quiet: silent
    assert out.read_bytes() == small_p4d.read_bytes()
    assert not partial.exists()


def test_resume_with_other_options_is_refused(synth_dir, tmp_path):
    from bake.fields.base import file_digest
    from bake.fields.registry import load_field
    from bake.job.run import run_bake

    ckpt = synth_dir / "subject.ckpt"
    out = tmp_path / "other.p4d"
    with pytest.raises(KeyboardInterrupt):
        run_bake(load_field(ckpt), _small_config(), out, source_digest=file_digest(ckpt), quiet=True,
                 on_tile=_StopAfter(2))
    r = run_cli("bake", str(ckpt), "-o", str(out), *SMALL_BAKE, "--seed", "3", "--resume", check=False)
    assert r.returncode == 2 and "other inputs or options" in r.stderr
    assert not out.exists()


def test_ctrl_c_leaves_nothing_at_output(synth_dir, tmp_path):
    out = tmp_path / "int.p4d"
    # SIGINT at its default in the child: a runner started in the background (non-interactive
    # shells ignore SIGINT there, and children inherit that) must not decide what this tests.
    proc = subprocess.Popen(_bake_cmd(synth_dir, out), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    partial = tmp_path / "int.p4d.partial"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not partial.exists():
        time.sleep(0.02)
    assert proc.poll() is None, "bake finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "--resume" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["missing.ckpt", "-o", "x.p4d"], "no such checkpoint"),
    (["{ckpt}", "-o", "x.p4d", "--views", "9"], "YAWxPITCH"),
    (["{ckpt}", "-o", "x.p4d", "--views", "99x3"], "between 1 and 64"),
    (["{ckpt}", "-o", "x.p4d", "--yaw-range", "40,-40"], "LO <= HI"),
    (["{ckpt}", "-o", "x.p4d", "--size", "8"], "size must be between 16 and 2048"),
    (["{ckpt}", "-o", "x.p4d", "--p-back", "1.5"], "p_back must be a probability"),
    (["{ckpt}", "-o", "/nonexistent-dir/x.p4d"], "output folder does not exist"),
    (["{ckpt}", "-o", "x.p4d", "--drive", "/nonexistent-dir"], "no dataset.json"),
])
def test_bad_input_is_one_line_usage_error(synth_dir, tmp_path, args, message):
    args = [a.replace("{ckpt}", str(synth_dir / "subject.ckpt")) for a in args]
    args = [str(tmp_path / a) if a == "x.p4d" else a for a in args]
    proc = run_cli("bake", *args, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("bake: error:")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_folder_is_one_line_and_leaves_nothing(synth_dir, tmp_path):
    import os
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        proc = run_cli("bake", str(synth_dir / "subject.ckpt"), "-o", str(locked / "x.p4d"), check=False)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "output folder cannot be written" in lines[0], proc.stderr
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_output_folder_that_is_a_file_is_a_usage_error(synth_dir, tmp_path):
    # Also what root sees for a folder it may not write into: the check names the folder.
    (tmp_path / "file").write_text("")
    proc = run_cli("bake", str(synth_dir / "subject.ckpt"), "-o", str(tmp_path / "file" / "x.p4d"), check=False)
    assert proc.returncode == 2 and "output folder is not a folder" in proc.stderr
    assert "partial" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_not_a_checkpoint_is_rejected(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x80\x04not a checkpoint at all")
    proc = run_cli("bake", str(bad), "-o", str(tmp_path / "x.p4d"), check=False)
    assert proc.returncode == 2 and "not a loadable checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_flag_and_no_arguments_exit_2():
    assert run_cli("bake", "--no-such-flag", check=False).returncode == 2
    assert run_cli("bake", check=False).returncode == 2


def test_bake_config_checks_itself_when_built_in_python():
    from bake.job.config import BakeConfig
    from bake.job.graph import GraphConfig

    for kwargs, message in [({"size": 8}, "size"), ({"views": (0, 3)}, "view counts"),
                            ({"codec": "gif"}, "codec"), ({"depth_scale": 3}, "depth_scale"),
                            ({"yaw_range": (30.0, -30.0)}, "yaw range"), ({"fps": 0.0}, "fps"),
                            ({"quality": 101}, "quality"), ({"groups": 0}, "groups"),
                            ({"chain": 0}, "chain must be 1"), ({"chain": 65}, "chain must be 1"),
                            ({"residual_quality": 0}, "residual_quality")]:
        with pytest.raises(ValueError, match=message):
            BakeConfig(**kwargs)
    with pytest.raises(ValueError, match="p_back"):
        GraphConfig(p_back=-0.1)
    with pytest.raises(ValueError, match="transitions"):
        GraphConfig(transitions=-1)
    assert BakeConfig().graph == GraphConfig()


def test_cli_defaults_are_the_config_defaults():
    from bake.cli.job import build_parser, config_from_args
    from bake.job.config import BakeConfig

    assert config_from_args(build_parser().parse_args(["x.ckpt", "-o", "x.p4d"])) == BakeConfig()


def test_drive_takes_keyframes_from_another_dataset(synth_dir, tmp_path):
    from bake.data.load import load_dataset
    from bake.job.keyframes import capture_views

    driver = tmp_path / "driver"
    run_cli("bake", "synth", "-o", str(driver), "--seconds", "2", "--size", "64", "--seed", "11")
    out = tmp_path / "reenact.p4d"
    run_cli("bake", str(synth_dir / "subject.ckpt"), "-o", str(out), "--drive", str(driver),
            "--views", "3x1", "--size", "64", "--fps", "5")
    ds = load_dataset(driver)
    with P4DReader(out) as r:
        kf = r.meta["keyframes"]
        assert kf["source"] == "drive"
        assert len(kf["times"]) == 10  # 0.0 .. 1.8 s of the 2 s driver at 5 fps
        times = ds.times() - ds.times()[0]
        want = np.stack([np.interp(kf["times"], times, ds.expressions()[:, c])
                         for c in range(ds.expression_dim)], axis=1)
        np.testing.assert_allclose(kf["expressions"], want, atol=1e-5)
        views = capture_views(ds.poses())
        np.testing.assert_allclose(np.asarray(kf["capture_view"])[:, 0], np.interp(kf["times"], times, views[:, 0]),
                                   atol=1e-4)
        # the view grid spans what the subject's own capture saw, not the driver's motion
        from bake.fields.registry import load_field
        from bake.job.views import captured_range

        angles = load_field(synth_dir / "subject.ckpt").capture.view_angles()
        yaws = r.meta["grid"]["yaws"]
        assert (yaws[0], yaws[-1]) == pytest.approx(captured_range(angles[:, 0]))


def test_every_bake_command_maps_errors_to_the_same_exit_codes(capsys):
    from bake.cli.exits import run_command
    from bake.data.dataset import DatasetError
    from bake.fields.base import CheckpointError
    from bake.job.run import BakeError
    from formats.errors import UsageError

    def raising(exc):
        def body():
            raise exc
        return body

    cases = [(UsageError("bad flag"), 2), (DatasetError("no frames"), 2), (CheckpointError("corrupt"), 2),
             (BakeError("other options"), 2), (OSError(28, "No space left on device"), 1),
             (RuntimeError("encoder failed"), 1), (KeyboardInterrupt(), 130)]
    for exc, code in cases:
        assert run_command("bake x", raising(exc)) == code, exc
        err = capsys.readouterr().err
        assert err.startswith("bake x: ") and err.count("\n") == 1, err
    assert run_command("bake x", lambda: 0) == 0


THREADS_PROBE = """
import sys
from bake.cli.main import main
assert main(sys.argv[1:]) == 0
import numba
print(numba.threading_layer())
"""


@pytest.mark.parametrize("env,want", [({}, "workqueue"), ({"NUMBA_THREADING_LAYER": "omp"}, "omp")])
def test_the_bake_runs_numba_on_workqueue_unless_told(synth_dir, tmp_path, env, want):
    # A quick portrait's parallel kernels, launched from one thread: workqueue unless the user set
    # numba's layer (OpenMP's sleeping threads cost a short kernel more than it runs on a busy box).
    import os
    out = tmp_path / "q.p4d"
    base = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    proc = subprocess.run([sys.executable, "-c", THREADS_PROBE, str(synth_dir), "-o", str(out), "--views", "3x1",
                           "--size", "48", "--fps", "2", "-q"], capture_output=True, text=True, cwd=REPO,
                          env={**base, **env}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == want and out.exists()
