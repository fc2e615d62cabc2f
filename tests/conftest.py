"""Shared fixtures: offline environment, composed configs shrunk to seconds, tiny datasets."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os

# Before anything imports huggingface_hub or wandb (see MACHINE-NOTES: set later, it is ignored).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("OMP_NUM_THREADS", "2")

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from segkit.cli._hydra import CONFIG_DIR

torch.set_num_threads(2)

# Shrinks any run to a few seconds on 2 CPU cores.
TINY = [
    "data.num_workers=0",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "~callbacks.progress_bar",
    "schedule.warmup_steps=1",
]


def tiny_shapes(num_train: int = 16, num_val: int = 5, size: int = 64) -> list[str]:
    return [
        f"data.train.num_train={num_train}",
        f"data.train.num_val={num_val}",
        f"data.train.size={size}",
        "data.batch_size=4",
        "data.val_batch_size=2",
    ]


@pytest.fixture
def release_memory() -> Iterator[None]:
    """After the test, hands freed memory back to the OS. glibc keeps the heap pages that big
    models' tensors leave behind; over the zoo tests the process held 8 GB between tests and
    the next large model ran out of the machine's 24 GB."""
    yield
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``compose_cfg(overrides, config_name="train")``: the real config, outputs in tmp_path."""

    def _compose(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(
                config_name=config_name,
                overrides=[
                    f"paths.cache_dir={tmp_path / 'cache'}",
                    f"paths.log_dir={tmp_path / 'logs'}",
                    *overrides,
                ],
            )
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "out")
        return cfg

    return _compose


# A tiny random-weight open_clip ViT (a few M parameters, builds in well under a second) for the
# open-vocabulary models: `compose_cfg(["model=clearclip", *TINY_CLIP])`.
TINY_CLIP_KWARGS = (
    "{embed_dim:64,vision_cfg:{image_size:64,layers:2,width:64,patch_size:16,head_width:32},"
    "text_cfg:{context_length:32,vocab_size:49408,width:64,heads:2,layers:2}}"
)
TINY_CLIP = [
    "model.encoder.pretrained=null",
    f"model.encoder.model_kwargs={TINY_CLIP_KWARGS}",
]
