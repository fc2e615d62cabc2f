"""transformers' ``SegformerForSemanticSegmentation`` converts to segkit's SegFormer exactly.

A tiny random Segformer (decoder at 256 channels like B0/B1, or 768 like B2-B5) is saved with
``save_pretrained``, converted by ``conf/convert/hf/segformer_b*.yaml`` and loaded with
``segkit.load``; both give the same logits at the decoder's stride 4 (fp32, eval mode).
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


@pytest.mark.parametrize(
    ("spec", "depths", "decoder_channels"),
    [("segformer_b0", [1, 2, 1, 1], 16), ("segformer_b2", [2, 1, 2, 1], 24)],
)
def test_converted_transformers_segformer_reproduces_its_logits(
    tmp_path, spec: str, depths: list[int], decoder_channels: int
) -> None:
    hidden = [8, 16, 40, 64]
    config = transformers.SegformerConfig(
        hidden_sizes=hidden,
        num_attention_heads=[1, 2, 5, 8],
        depths=depths,
        decoder_hidden_size=decoder_channels,
        num_labels=150,
        id2label={i: f"class{i}" for i in range(150)},  # ADE20K-sized: names are kept
        label2id={f"class{i}": i for i in range(150)},
    )
    torch.manual_seed(0)
    reference = transformers.SegformerForSemanticSegmentation(config)
    randomize(reference, seed=0)
    reference.eval()
    reference.save_pretrained(tmp_path / "hf")

    overrides = [
        "+model.encoder.embed_dims=[8,16,40,64]",
        f"+model.encoder.depths={depths}".replace(" ", ""),
        f"model.decoder.channels={decoder_channels}",
    ]
    dst = convert_checkpoint(
        tmp_path / "hf", tmp_path / "segformer.ckpt", spec, source="hf", overrides=overrides
    )
    model = segkit.load(dst)
    model.eval()
    assert model.class_names == [f"class{i}" for i in range(150)]

    images = torch.randint(0, 256, (2, 3, 70, 94), generator=torch.Generator().manual_seed(1))
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference(pixel_values=(images.float() - mean) / std).logits
        out = model(images.float())["seg"]
    assert out.shape == expected.shape == (2, 150, 18, 24)
    assert expected.abs().mean() > 1e-2
    diff = (out - expected).abs().max().item()
    assert diff <= 1e-4, f"max abs difference {diff:.2e}"
