"""formats.progress: the shared bar keeps its behaviour on tqdm (ETA, quiet, short logs)."""

import io

from formats.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_plain_line_about_every_tenth_and_the_last():
    log = io.StringIO()
    with Progress(95, "job", stream=log) as bar:
        for _ in range(95):
            bar.update(1, loss=0.123456)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and 10 <= len(lines) <= 13
    assert lines[-1].startswith("job: 100.0% 95/95 [") and "loss=0.123" in lines[-1]
    assert all("<" in ln for ln in lines)  # elapsed<remaining: the ETA


def test_a_slow_job_in_a_log_does_not_repeat_its_last_line():
    log = io.StringIO()
    with Progress(4, "slow", stream=log) as bar:
        for _ in range(4):
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("slow:   0.0% 0/4") and lines[-1].startswith("slow: 100.0% 4/4")
    assert len(lines) == 5


def test_quiet_prints_nothing_and_still_counts():
    out = io.StringIO()
    with Progress(5, "x", stream=out, disable=True) as bar:
        bar.update(5)
    assert out.getvalue() == ""


def test_a_terminal_gets_one_redrawn_bar_that_resumes_where_it_stopped():
    term = Terminal()
    with Progress(50, "bake", stream=term, initial=10) as bar:
        assert bar.n == 10
        for _ in range(40):
            bar.update(1)
    text = term.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and text.count("\r") >= 2
    assert "50/50" in text.rsplit("\r", 1)[-1]
