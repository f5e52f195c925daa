"""so3k_driver.progress: plain whole lines off a terminal, a live rich bar on one."""

import io
import re
import subprocess
import sys
import time

from rich.console import Console

from so3k_driver.progress import Progress, format_duration, format_plain_line

ANSI = re.compile(r"\x1b\[")


def test_plain_line_format():
    line = format_plain_line("training", 40, 100, "epoch", elapsed_s=19.2, rate_per_s=2.1,
                             fields={"loss": 0.012345678, "frames": 3})
    assert line == "training: 40/100 epoch (40%) 2.1 epoch/s elapsed 19 s left 28 s loss 0.01235 frames 3"
    assert format_plain_line("run", 7, None, "step", 0.4, None, {}) == "run: 7 step elapsed 0 s"
    assert [format_duration(s) for s in (0.5, 59.9, 185, 7620)] == ["0 s", "59 s", "3 min 05 s", "2 h 07 min"]


def test_plain_mode_writes_whole_lines_without_carriage_returns_or_ansi():
    stream = io.StringIO()  # not a terminal
    with Progress(total=5, description="training", unit="epoch", stream=stream, plain_interval_s=0.0) as bar:
        assert not bar.is_live
        for epoch in range(1, 6):
            time.sleep(0.002)
            bar.update(epoch, loss=1.0 / epoch)
            if epoch == 2:
                bar.log("checkpoint written")
    text = stream.getvalue()
    assert "\r" not in text and not ANSI.search(text)
    lines = text.splitlines()
    assert text.endswith("\n") and "checkpoint written" in lines
    progress_lines = [line for line in lines if line.startswith("training: ")]
    assert len(progress_lines) == 6  # one per update (interval 0) and one at the end
    assert progress_lines[-1].startswith("training: 5/5 epoch (100%) ")
    assert progress_lines[-1].endswith("loss 0.2")
    assert re.search(r" [\d.e+]+ epoch/s elapsed \d+ s left 0 s ", progress_lines[-1])


def test_plain_mode_is_rate_limited():
    stream = io.StringIO()
    with Progress(total=1000, description="md", unit="step", stream=stream, plain_interval_s=3600) as bar:
        for step in range(1, 1001):
            bar.update(step)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("md: 1000/1000 step (100%)")


def test_unknown_total_and_resumed_start():
    stream = io.StringIO()
    with Progress(total=None, description="run", unit="step", stream=stream, completed=500) as bar:
        assert bar.rate_per_s() is None  # nothing done since the start yet
        time.sleep(0.01)
        bar.update(510, T=300.25)
        assert bar.rate_per_s() > 0
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("run: 510 step ") and "left" not in line and "%" not in line
    assert line.endswith("T 300.2")


def test_terminal_mode_renders_a_live_bar():
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=160, color_system=None)
    with Progress(total=20, description="epoch 1/3", unit="batch", console=console) as bar:
        assert bar.is_live
        time.sleep(0.01)
        bar.update(5, loss=0.5)
        bar.log("a message [with brackets]")
        bar.update(20, loss=0.25)
    text = stream.getvalue()
    assert "a message [with brackets]" in text
    assert "epoch 1/3" in text and "20/20" in text and "batch/s" in text and "loss 0.25" in text
    assert "━" in text  # rich's bar glyph: a live bar was drawn


def test_terminal_mode_without_total():
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=160, color_system=None)
    with Progress(total=None, description="run", unit="step", console=console) as bar:
        bar.update(42, T=301.0)
    text = stream.getvalue()
    assert "42/?" in text and "T 301" in text


def test_importing_progress_imports_neither_jax_nor_rich():
    code = "import sys, so3k_driver.progress; print('jax' in sys.modules, 'rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
