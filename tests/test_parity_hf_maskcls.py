"""transformers' MaskFormer / Mask2Former (tiny configs, random weights, ResNet backbones) converted
to segkit give the same semantic score maps: ``sum_q softmax(class)[q, :-1] * sigmoid(mask)[q]``
with the mask logits upsampled to the input (MMSegmentation's inference, which segkit's heads
implement in eval mode)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).parent / "parity"))
from random_weights import randomize  # noqa: E402  (the parity fixtures' weights)

import segkit  # noqa: E402
from segkit.checkpoints import convert_checkpoint  # noqa: E402

MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
NUM_LABELS = 19  # Cityscapes' label space keeps the checkpoints small


def _resnet_config():
    return transformers.ResNetConfig(
        embedding_size=64,  # timm's 7x7 stem is 64 wide
        hidden_sizes=[32, 64, 128, 256],
        depths=[1, 1, 1, 1],
        layer_type="bottleneck",
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )


def _semantic(cls_logits, mask_logits, size):
    masks = F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)
    return torch.einsum("nqc,nqhw->nchw", cls_logits.softmax(-1)[..., :-1], masks.sigmoid())


def _compare(reference, name, overrides, tmp_path):
    randomize(reference, seed=0)
    reference.eval()
    reference.save_pretrained(tmp_path / "hf")
    images = torch.randint(
        0, 256, (1, 3, 64, 96), generator=torch.Generator().manual_seed(1)
    ).float()
    with torch.no_grad():
        out = reference(pixel_values=(images - MEAN) / STD)
    expected = _semantic(out.class_queries_logits, out.masks_queries_logits, images.shape[2:])
    dst = convert_checkpoint(
        tmp_path / "hf",
        tmp_path / "segkit",
        name,
        source="hf",
        data="cityscapes",
        overrides=overrides,
    )
    model = segkit.load(dst)
    model.eval()
    scores = model.inference(images)["seg"]
    assert scores.shape == expected.shape == (1, NUM_LABELS, 64, 96)
    assert expected.abs().mean() > 1e-2
    diff = (scores - expected).abs().max().item()
    assert diff <= 1e-4, f"max abs difference {diff:.2e}"


def test_mask2former_from_transformers(tmp_path):
    config = transformers.Mask2FormerConfig(
        backbone_config=_resnet_config(),
        hidden_dim=32,
        mask_feature_size=32,
        feature_size=32,
        encoder_layers=2,
        decoder_layers=4,  # transformers counts the prediction from the bare queries
        num_queries=10,
        num_labels=NUM_LABELS,
        num_attention_heads=4,
        dim_feedforward=64,
        encoder_feedforward_dim=64,
    )
    reference = transformers.Mask2FormerForUniversalSegmentation(config)
    overrides = [
        "+model.encoder.channels=[8,16,32,64]",
        "+model.encoder.layers=[1,1,1,1]",
        "model.decoder.channels=32",
        "model.decoder.num_layers=2",
        "model.decoder.num_heads=4",
        "model.decoder.ffn_channels=64",
        "model.heads.seg.num_queries=10",
        "model.heads.seg.num_layers=3",
        "model.heads.seg.num_heads=4",
        "model.heads.seg.ffn_channels=64",
    ]
    _compare(reference, "mask2former_r50", overrides, tmp_path)


def test_maskformer_from_transformers(tmp_path):
    decoder = transformers.DetrConfig(
        d_model=32, decoder_layers=2, decoder_attention_heads=4, decoder_ffn_dim=64, num_queries=10
    )
    config = transformers.MaskFormerConfig(
        backbone_config=_resnet_config(),
        decoder_config=decoder,
        fpn_feature_size=32,
        mask_feature_size=32,
        num_queries=10,
        num_labels=NUM_LABELS,
    )
    reference = transformers.MaskFormerForInstanceSegmentation(config)
    overrides = [
        "+model.encoder.channels=[8,16,32,64]",
        "+model.encoder.layers=[1,1,1,1]",
        "model.decoder.channels=32",
        "model.decoder.mask_channels=32",
        "model.heads.seg.embed_dims=32",
        "model.heads.seg.mask_channels=32",
        "model.heads.seg.num_queries=10",
        "model.heads.seg.num_layers=2",
        "model.heads.seg.num_heads=4",
        "model.heads.seg.ffn_channels=64",
    ]
    _compare(reference, "maskformer_r50", overrides, tmp_path)
