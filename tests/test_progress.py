"""The progress display: plain lines when stdout is not a terminal, a rich bar over the
iterations with loss, lr and time remaining when it is."""

from __future__ import annotations

import re
import sys

import pytest
import rich
from conftest import TINY, tiny_shapes

from segkit.callbacks.progress import PlainProgressBar, RichIterationProgressBar
from segkit.cli.train import train

# TINY without the lines that switch the progress bar off; 4 steps, validation every 2, CSV logger.
RUN = [o for o in TINY if "progress" not in o] + tiny_shapes()
RUN += ["~callbacks.save_samples", "~callbacks.save_confusion"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NUM = r"[0-9.e+-]+"


def test_plain_lines_every_n_steps_and_after_validation_without_control_codes(
    compose_cfg, capsys
) -> None:
    cfg = compose_cfg([*RUN, "callbacks.progress_bar.plain_refresh_rate=2"])
    train(cfg)
    out = capsys.readouterr().out
    assert "\r" not in out and not ANSI.search(out)
    train_lines = [line for line in out.splitlines() if line.startswith("step ")]
    val_lines = [line for line in out.splitlines() if line.startswith("val step ")]
    pattern = (
        rf"step (\d+)/4 \((\d+)%\) \| loss {NUM} \| lr {NUM} \| {NUM} it/s \| eta \d+:\d\d:\d\d"
    )
    assert [re.fullmatch(pattern, line).groups() for line in train_lines] == [
        ("2", "50"),
        ("4", "100"),
    ], train_lines
    assert len(val_lines) == 2
    for step, line in zip((2, 4), val_lines):
        assert re.fullmatch(rf"val step {step} \| mIoU {NUM}( \| m?[A-Za-z]+ {NUM})+", line), line
        assert "aAcc" in line and "IoU/" not in line


def test_rich_bar_on_a_terminal_counts_iterations_and_shows_loss_and_lr(
    compose_cfg, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    cfg = compose_cfg(
        [*RUN, "+callbacks.progress_bar.console_kwargs={force_terminal:true,width:240}"]
    )
    try:
        train(cfg)
    finally:
        rich.reconfigure()  # Lightning reconfigured rich's global console with our kwargs
    raw = capsys.readouterr().out
    assert ANSI.search(raw)  # a terminal: rich drew it
    out = ANSI.sub("", raw)
    final = [line for line in out.replace("\r", "\n").splitlines() if line.startswith("Train")]
    assert final, out[-2000:]
    last = final[-1]
    assert re.search(r"\b4/4\b", last), last  # iterations over max_steps, not batches of an epoch
    assert re.search(rf"train/loss: {NUM}", last) and re.search(rf"lr: {NUM}", last), last
    assert "v_num" not in last and "Epoch" not in last
    assert re.search(r"\d+:\d\d:\d\d • \d+:\d\d:\d\d", last), last  # elapsed • remaining


def test_factory_picks_the_bar_from_the_terminal(monkeypatch) -> None:
    from segkit.callbacks import progress_bar

    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    plain = progress_bar(plain_refresh_rate=7)
    assert isinstance(plain, PlainProgressBar) and plain.refresh_rate == 7
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert isinstance(progress_bar(), RichIterationProgressBar)
    with pytest.raises(ValueError, match="refresh_rate"):
        PlainProgressBar(0)
