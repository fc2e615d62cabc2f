"""transformers' ``DepthAnythingForDepthEstimation`` converts to segkit's Depth Anything exactly.

A tiny random Depth Anything (DINOv2 with 4 blocks on a 5x5 position grid, all four blocks
tapped, narrow neck) is saved with ``save_pretrained``, converted by
``conf/convert/hf/depth_anything_vit-s.yaml`` and loaded with ``segkit.load``. Inputs of 56x56
(the position grid resampled down: anti-aliasing would show) and 42x70 (an odd 3-row token grid:
the fusion blocks must upsample to the next level's size, not x2) give transformers'
``predicted_depth`` to 1e-4.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).parent / "parity"))
from random_weights import randomize  # noqa: E402  (the parity fixtures' weights)

import segkit  # noqa: E402
from segkit.checkpoints import convert_checkpoint  # noqa: E402

OVERRIDES = [
    "+model.encoder.embed_dim=32",
    "+model.encoder.depth=4",
    "+model.encoder.num_heads=2",
    "+model.encoder.img_size=70",
    "model.encoder.out_indices=[0,1,2,3]",
    "model.decoder.channels=16",
    "model.decoder.post_process_channels=[8,16,32,32]",
    "model.heads.depth.hidden_channels=8",
]


def _tiny_depth_anything(metric: bool = False):
    backbone = transformers.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        mlp_ratio=4,
        image_size=70,  # 5x5 position grid
        patch_size=14,
        out_indices=[1, 2, 3, 4],  # stages: the outputs of blocks 0-3
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        patch_size=14,
        depth_estimation_type="metric" if metric else "relative",
        max_depth=10 if metric else 1,
    )
    torch.manual_seed(0)
    model = transformers.DepthAnythingForDepthEstimation(config)
    randomize(model, seed=0)
    return model.eval()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("depth_anything")
    reference = _tiny_depth_anything()
    reference.save_pretrained(tmp_path / "hf")
    dst = convert_checkpoint(
        tmp_path / "hf", tmp_path / "da.ckpt", "depth_anything_vit-s", "hf", overrides=OVERRIDES
    )
    return reference, segkit.load(dst)


@pytest.mark.parametrize("size", [(56, 56), (42, 70)])
def test_converted_transformers_depth_anything_reproduces_its_depth(converted, size) -> None:
    reference, model = converted
    images = torch.randint(0, 256, (2, 3, *size), generator=torch.Generator().manual_seed(1))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference(pixel_values=(images.float() / 255 - mean) / std).predicted_depth
        out = model(images.float())["depth"]
    assert out.shape == (2, 1, *size) and expected.shape == (2, *size)
    assert expected.abs().mean() > 1e-2 and (expected > 0).float().mean() > 0.2
    assert (out[:, 0] - expected).abs().max().item() <= 1e-4


def test_converted_metric_depth_anything_reproduces_its_depth(tmp_path) -> None:
    reference = _tiny_depth_anything(metric=True)
    reference.save_pretrained(tmp_path / "hf")
    overrides = [
        *OVERRIDES,
        "model.heads.depth.depth_estimation_type=metric",
        "model.heads.depth.max_depth=10",
    ]
    dst = convert_checkpoint(
        tmp_path / "hf", tmp_path / "da.ckpt", "depth_anything_vit-s", "hf", overrides=overrides
    )
    model = segkit.load(dst)
    images = torch.randint(0, 256, (1, 3, 42, 56), generator=torch.Generator().manual_seed(2))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference(pixel_values=(images.float() / 255 - mean) / std).predicted_depth
        out = model(images.float())["depth"][:, 0]
    assert expected.min() > 0 and expected.max() < 10 and expected.std() > 1e-3
    assert (out - expected).abs().max().item() <= 1e-4


def test_converted_depth_anything_predicts_at_the_image_size(converted) -> None:
    """``predict`` returns one ``(H, W)`` depth map per image, at any size (here not a multiple
    of 14: the encoder pads, the output is resized back)."""
    _, model = converted
    image = torch.randint(0, 256, (3, 45, 61), dtype=torch.uint8)
    (result,) = model.predict(image)
    assert result["depth"].shape == (45, 61)
    assert result["depth"].dtype == torch.float32 and torch.isfinite(result["depth"]).all()
    assert (result["depth"] >= 0).all()
