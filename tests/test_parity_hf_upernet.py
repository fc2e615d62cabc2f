"""transformers' UperNet (ConvNeXt and Swin backbones) and BEiT segmentation models convert to
segkit's UPerNet models exactly.

Tiny random reference models are saved with ``save_pretrained``, converted by
``conf/convert/hf/{upernet_convnext-t,upernet_swin-t,beit-b}.yaml`` and loaded with
``segkit.load``; transformers' UperNet logits (bilinearly resized to the input) are compared with segkit's
decoder-stride logits resized the same way, BEiT's at the decoder stride 4 (fp32, eval mode).
"""

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
NUM_LABELS = 150


def _labels() -> dict:
    return {
        "num_labels": NUM_LABELS,
        "id2label": {i: f"class{i}" for i in range(NUM_LABELS)},
        "label2id": {f"class{i}": i for i in range(NUM_LABELS)},
    }


def _compare(
    reference, tmp_path, spec: str, overrides: list[str], size: tuple[int, int], stride: int = 1
) -> None:
    """``stride``: of transformers' logits (UperNet: 1, resized to the input; BEiT: 4)."""
    randomize(reference, seed=0)
    reference.eval()
    reference.save_pretrained(tmp_path / "hf")
    dst = convert_checkpoint(
        tmp_path / "hf", tmp_path / "model.ckpt", spec, source="hf", overrides=overrides
    )
    model = segkit.load(dst)
    model.eval()
    assert model.class_names == [f"class{i}" for i in range(NUM_LABELS)]
    images = torch.randint(0, 256, (2, 3, *size), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(pixel_values=(images.float() - MEAN) / STD).logits
        out = model(images.float())["seg"]
    if stride == 1:
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
    assert out.shape == expected.shape == (2, NUM_LABELS, size[0] // stride, size[1] // stride)
    assert expected.abs().mean() > 1e-2
    assert (out - expected).abs().max().item() <= 1e-4


def _upernet_config(backbone) -> object:
    return transformers.UperNetConfig(
        backbone_config=backbone, hidden_size=32, auxiliary_channels=16, **_labels()
    )


def test_converted_transformers_upernet_convnext_reproduces_its_logits(tmp_path) -> None:
    backbone = transformers.ConvNextConfig(
        depths=[1, 1, 2, 1],
        hidden_sizes=[16, 32, 64, 128],
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    torch.manual_seed(0)
    reference = transformers.UperNetForSemanticSegmentation(_upernet_config(backbone))
    overrides = [
        "+model.encoder.depths=[1,1,2,1]",
        "+model.encoder.dims=[16,32,64,128]",
        "model.decoder.channels=32",
        "model.auxiliary.fcn.decoder.channels=16",
    ]
    _compare(reference, tmp_path, "upernet_convnext-t", overrides, (70, 100))


def test_converted_transformers_upernet_swin_reproduces_its_logits(tmp_path) -> None:
    # window 2 and stages of 24x25 ... 3x4 tokens: padding to whole windows and shifted windows
    # in every stage, all stages larger than a window (see conf/convert/hf/upernet_swin-t.yaml)
    backbone = transformers.SwinConfig(
        embed_dim=16,
        depths=[2, 2, 2, 2],
        num_heads=[1, 2, 4, 8],
        window_size=2,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    torch.manual_seed(0)
    reference = transformers.UperNetForSemanticSegmentation(_upernet_config(backbone))
    overrides = [
        "+model.encoder.embed_dim=16",
        "+model.encoder.depths=[2,2,2,2]",
        "+model.encoder.num_heads=[1,2,4,8]",
        "+model.encoder.window_size=2",
        "model.decoder.channels=32",
        "model.auxiliary.fcn.decoder.channels=16",
    ]
    _compare(reference, tmp_path, "upernet_swin-t", overrides, (96, 100))


def test_converted_transformers_beit_reproduces_its_logits(tmp_path) -> None:
    config = transformers.BeitConfig(
        image_size=64,
        hidden_size=32,
        num_hidden_layers=12,
        num_attention_heads=2,
        intermediate_size=64,
        use_relative_position_bias=True,
        use_absolute_position_embeddings=False,
        out_indices=[3, 5, 7, 11],  # microsoft/beit-base-finetuned-ade-640-640's: blocks 1, 3, 5, 9
        auxiliary_channels=16,
        **_labels(),
    )
    torch.manual_seed(0)
    reference = transformers.BeitForSemanticSegmentation(config)
    overrides = [
        "model.encoder.img_size=64",
        "+model.encoder.embed_dim=32",
        "+model.encoder.num_heads=2",
        "+model.encoder.mlp_ratio=2",
        "model.decoder.channels=32",
        "model.auxiliary.fcn.decoder.channels=16",
    ]
    _compare(reference, tmp_path, "beit-b", overrides, (64, 64), stride=4)
