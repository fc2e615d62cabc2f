"""Loggers chosen by config (csv, tensorboard, wandb offline) write the run's scalars; the W&B
media callback logs fixed validation samples, the per-class table and the confusion matrix; a
resumed run continues the same W&B run."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, tiny_shapes
from hydra.utils import instantiate
from PIL import Image

from segkit.cli.train import train

# One validation every 2 steps; no PNG callbacks (tests/test_viz.py covers them).
FAST = [*TINY, *tiny_shapes(), "~callbacks.save_samples", "~callbacks.save_confusion"]


def _out(cfg) -> Path:
    return Path(cfg.paths.output_dir)


def test_csv_logger_writes_train_loss_and_val_miou(compose_cfg) -> None:
    cfg = compose_cfg([*FAST, "logger=csv", "trainer.max_steps=2"])
    miou = train(cfg)
    assert isinstance(miou, float)  # the sweepers' contract: cfg.optimized_metric as a float
    with open(_out(cfg) / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    mious = [(int(r["step"]), float(r["val/mIoU"])) for r in rows if r.get("val/mIoU")]
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses)
    assert len(mious) == 1 and mious[0][1] == pytest.approx(miou)


def test_tensorboard_logger_writes_event_files_with_the_scalars(compose_cfg) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_cfg([*FAST, "logger=tensorboard", "trainer.max_steps=2"])
    miou = train(cfg)
    events = list((_out(cfg) / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "train/loss" in tags and "val/mIoU" in tags
    assert len(acc.Scalars("train/loss")) == 2
    assert acc.Scalars("val/mIoU")[-1].value == pytest.approx(miou)


# --------------------------------------------------------------------------- W&B offline
def wandb_records(path: Path) -> Iterator:
    """The protobuf records of a W&B transaction log (``run-<id>.wandb``): LevelDB's log format
    (32 KiB blocks; records of 7-byte headers: crc32, length, type FULL/FIRST/MIDDLE/LAST) after
    a 7-byte ``:W&B`` file header. wandb >= 0.19 has no Python reader for it any more."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    pos, block, payload = 7, 32768, b""
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # block trailer: padding
            pos += room
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        payload = chunk if kind in (1, 2) else payload + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            yield record


def wandb_history(run_dir: Path) -> tuple[str, list[dict]]:
    """``(run id, history rows)`` of an offline run folder, each row ``{key: decoded value}``
    (nested media keys joined with ``/``)."""
    (log,) = run_dir.glob("run-*.wandb")
    run_id, rows = "", []
    for record in wandb_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run_id = record.run.run_id
        elif kind == "history":
            rows.append(
                {
                    i.key or "/".join(i.nested_key): json.loads(i.value_json)
                    for i in record.history.item
                }
            )
    return run_id, rows


def test_wandb_offline_logs_scalars_media_and_resumes_the_same_run(compose_cfg) -> None:
    common = [*FAST, "logger=wandb", "callbacks.wandb_media.num_images=3"]
    cfg = compose_cfg([*common, "trainer.max_steps=2"])
    miou = train(cfg)
    ckpt = torch.load(
        _out(cfg) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    (run_dir,) = (_out(cfg) / "wandb").glob("offline-run-*")
    run_id, rows = wandb_history(run_dir)
    assert run_dir.name.endswith(f"-{run_id}") and ckpt["segkit"]["wandb_run_id"] == run_id

    train_steps = [r["trainer/global_step"] for r in rows if "train/loss" in r]
    (val,) = [r for r in rows if "val/mIoU" in r]
    assert len(train_steps) == 2 and val["val/mIoU"] == pytest.approx(miou)

    # Media: one history row at step 2 with the fixed samples, the table and the matrix.
    (media,) = [r for r in rows if "val/samples/_type" in r]
    assert media["trainer/global_step"] == 2
    assert media["val/samples/captions"] == ["val sample 0", "val sample 2", "val sample 4"]
    files = run_dir / "files"
    datamodule = instantiate(cfg.data)
    datamodule.setup("validate")
    for k, masks in zip((0, 2, 4), media["val/samples/all_masks"]):
        truth = np.asarray(Image.open(files / masks["ground_truth"]["path"]))
        expected = np.asarray(datamodule.datasets["val"][k]["mask"])
        np.testing.assert_array_equal(truth, expected)
        pred = np.asarray(Image.open(files / masks["predictions"]["path"]))
        assert pred.shape == expected.shape and pred.max() < 7
    table = json.loads((files / media["val/per_class/path"]).read_text())
    assert table["columns"] == ["class", "IoU", "Acc", "Dice", "Fscore"]
    assert [row[0] for row in table["data"]][:2] == ["background", "disc"]
    assert table["data"][0][1] == pytest.approx(val["val/IoU/background"])
    confusion = json.loads((files / media["val/confusion_matrix_table/path"]).read_text())
    assert confusion["columns"] == ["Actual", "Predicted", "nPredictions"]
    counts = {(a, p): n for a, p, n in confusion["data"]}
    assert len(counts) == 49
    diagonal = sum(n for (a, p), n in counts.items() if a == p)
    assert diagonal / sum(counts.values()) == pytest.approx(val["val/aAcc"], abs=1e-6)
    image = Image.open(files / media["val/confusion_matrix_image/path"])
    assert image.size == (
        media["val/confusion_matrix_image/width"],
        media["val/confusion_matrix_image/height"],
    )

    # Resume from step 2 to 4 in a new output folder: the same W&B run, the step axis goes on.
    resumed = compose_cfg(
        [*common, "trainer.max_steps=4", f"ckpt_path={_out(cfg) / 'checkpoints' / 'last.ckpt'}"]
    )
    resumed.paths.output_dir = str(_out(cfg).parent / "resumed")
    train(resumed)
    (run_dir2,) = (_out(resumed) / "wandb").glob("offline-run-*")
    run_id2, rows2 = wandb_history(run_dir2)
    assert run_id2 == run_id and run_dir2.name.endswith(f"-{run_id}")
    assert [r["trainer/global_step"] for r in rows2 if "train/loss" in r] == [2, 3]
    (media2,) = [r for r in rows2 if "val/samples/_type" in r]
    assert media2["trainer/global_step"] == 4
    assert media2["val/samples/captions"] == media["val/samples/captions"]
