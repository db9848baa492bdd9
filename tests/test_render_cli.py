"""`bake render`: one RGBA image of any checkpoint kind from an orbit view."""

import subprocess
import sys

import cv2
import pytest
import torch

from testkit.toydata import write_ball_checkpoint


def _render(*args):
    return subprocess.run([sys.executable, "-m", "bake.cli", "render", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_ball_checkpoint(tmp_path_factory.mktemp("render") / "s.ckpt")


def test_render_writes_rgba_of_the_asked_size(ckpt, tmp_path):
    out = tmp_path / "img.png"
    r = _render(ckpt, "--expr", "jaw=0.5", "--yaw", 20, "--pitch", -5, "--size", 48, "-o", out)
    assert r.returncode == 0, r.stderr
    img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert img.shape == (48, 48, 4)
    a = img[..., 3]
    assert a.max() > 200 and a.min() < 10  # the dense ball in the middle, empty corners
    assert a[24, 24] > a[0, 0]


def test_render_rejects_unknown_coefficient_in_one_line(ckpt, tmp_path):
    out = tmp_path / "bad.png"
    r = _render(ckpt, "--expr", "nope=1", "-o", out)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "nope" in r.stderr and "jaw" in r.stderr and not out.exists()


def test_render_rejects_a_foreign_file(tmp_path):
    bad = tmp_path / "x.ckpt"
    torch.save({"hello": 1}, bad)
    r = _render(bad, "-o", tmp_path / "o.png")
    assert r.returncode == 2 and "not a Portrait4D checkpoint" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["{ckpt}", "-o", "{tmp}/img.jpg"], "must be a .png"),
    (["{ckpt}", "-o", "{tmp}/no/such/dir/img.png"], "output folder does not exist"),
    (["{ckpt}", "--size", "2", "-o", "{tmp}/img.png"], "--size"),
    (["{tmp}/missing.ckpt", "-o", "{tmp}/img.png"], "no such checkpoint"),
    (["{ckpt}", "--yaw", "abc", "-o", "{tmp}/img.png"], "invalid float"),
])
def test_render_usage_errors_exit_2_and_write_nothing(ckpt, tmp_path, args, message):
    args = [a.replace("{ckpt}", str(ckpt)).replace("{tmp}", str(tmp_path)) for a in args]
    r = _render(*args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_render_leaves_no_temp_file_beside_the_image(ckpt, tmp_path):
    r = _render(ckpt, "--size", 16, "-o", tmp_path / "a.png")
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_expression_parser():
    from bake.cli.render import UsageError, parse_expression
    assert parse_expression("b=0.25, a=1", ["a", "b"]).tolist() == [1.0, 0.25]
    with pytest.raises(UsageError):
        parse_expression("a", ["a"])
    with pytest.raises(UsageError):
        parse_expression("a=x", ["a"])
