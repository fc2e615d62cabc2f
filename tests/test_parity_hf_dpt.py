"""transformers' ``DPTForSemanticSegmentation`` converts to segkit's DPT exactly.

A tiny random DPT (plain ViT, batch-norm fusion units as in the ADE20K checkpoints) is saved with
``save_pretrained``, converted by ``conf/convert/hf/dpt_vit-b.yaml`` and loaded with
``segkit.load``. transformers upsamples its logits x2 (bilinear, ``align_corners=True``) inside
its head; segkit's are at the decoder's stride 2, so they are compared after the same upsampling.
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


def test_converted_transformers_dpt_reproduces_its_logits(tmp_path) -> None:
    config = transformers.DPTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=128,
        image_size=48,  # 3x3 position grid, resampled (bilinear) to the 4x4 grid of 64x64 inputs
        patch_size=16,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=16,
        readout_type="project",
        use_batch_norm_in_fusion_residual=True,
        use_auxiliary_head=True,
        num_labels=150,
    )
    torch.manual_seed(0)
    reference = transformers.DPTForSemanticSegmentation(config)
    randomize(reference, seed=0)
    reference.eval()
    reference.save_pretrained(tmp_path / "hf")

    overrides = [
        "+model.encoder.embed_dim=32",
        "+model.encoder.depth=4",
        "+model.encoder.num_heads=2",
        "model.encoder.out_indices=[0,1,2,3]",
        "model.encoder.img_size=48",
        "model.decoder.channels=16",
        "model.decoder.post_process_channels=[8,8,16,16]",
    ]
    dst = convert_checkpoint(
        tmp_path / "hf", tmp_path / "dpt.ckpt", "dpt_vit-b", source="hf", overrides=overrides
    )
    model = segkit.load(dst)
    model.eval()

    images = torch.randint(0, 256, (2, 3, 64, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(pixel_values=(images.float() - 127.5) / 127.5).logits
        out = model(images.float())["seg"]
        out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
    assert out.shape == expected.shape == (2, 150, 64, 64)
    assert expected.abs().mean() > 1e-2
    assert (out - expected).abs().max().item() <= 1e-4
