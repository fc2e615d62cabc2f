"""SAN (model=san_vit-b16) shrunk to a tiny CLIP and side adapter: training step, gradients,
open-vocabulary inference, input padding, the recognition attention mask, a short training run.

Parity with MMSegmentation: tests/parity/mmseg/san_vit-b16*.yaml (tests/test_parity_mmseg.py).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, TINY_CLIP, tiny_shapes
from hydra.utils import instantiate

from segkit.models.openvocab.san import SANEncoder, SANHead, recognition_attn_mask

# The tiny CLIP has 2 blocks (2 heads): block 0 and the patch embedding feed a 2-block adapter,
# block 1 recognises; adapter block 1 is deep-supervised.
TINY_SAN = [
    "model=san_vit-b16",
    "data=shapes",
    *TINY_CLIP,
    "model.encoder.clip_out_indices=[0]",
    "model.encoder.deep_supervision=[1]",
    "model.encoder.adapter.embed_dims=32",
    "model.encoder.adapter.num_queries=8",
    "model.encoder.adapter.num_layers=2",
    "model.encoder.adapter.num_heads=2",
    "model.encoder.adapter.fusion_index=[0,1]",
    "model.encoder.adapter.pos_grid=[8,8]",
    "model.encoder.adapter.decoder.bias_heads=2",
    "model.encoder.adapter.decoder.embed_channels=16",
    "model.encoder.adapter.decoder.mlp_channels=16",
    "model.heads.seg.text_encoder.templates=single",
    "model.heads.seg.loss.num_points=256",
]


@pytest.fixture
def san(compose_cfg):
    cfg = compose_cfg(TINY_SAN)
    torch.manual_seed(0)
    return instantiate(cfg.model, _convert_="partial")


def test_training_step_reaches_every_trainable_parameter(san) -> None:
    assert isinstance(san.encoder, SANEncoder) and isinstance(san.heads["seg"], SANHead)
    trainable = {n for n, p in san.named_parameters() if p.requires_grad}
    # MMSeg's SAN trains the adapter, CLIP's position embedding and "no object" only
    assert trainable == {n for n in trainable if n.startswith("encoder.side_adapter.")} | {
        "encoder.visual.positional_embedding",
        "heads.seg.bg_embed",
    }
    assert any(n.startswith("encoder.side_adapter.") for n in trainable)
    images = torch.randint(0, 256, (2, 3, 96, 64)).float()
    target = torch.randint(0, san.heads["seg"].num_classes, (2, 96, 64))
    target[:, :8] = 255
    san.train()
    losses = san.loss(san(images), {"mask": target})
    names = {f"seg/{p}loss_{k}" for p in ("", "d1.") for k in ("cls", "mask", "dice")}
    assert set(losses) == names
    assert all(torch.isfinite(v) and v > 0 for v in losses.values()), losses
    sum(losses.values()).backward()
    missing = [n for n, p in san.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    zero = [n for n, p in san.named_parameters() if p.requires_grad and not p.grad.abs().sum() > 0]
    assert not zero, zero


def test_scores_for_any_class_list(san) -> None:
    san.eval()
    images = torch.randint(0, 256, (2, 3, 100, 72)).float()  # padded to 128x96 inside
    with torch.no_grad():
        scores = san.inference(images)["seg"]
    k = san.heads["seg"].num_classes
    assert scores.shape == (2, k, 100, 72)
    # mask classification: per query, softmax over K classes + "no object" times a sigmoid
    assert (scores >= 0).all() and (scores.sum(1) <= san.encoder.side_adapter.num_queries).all()
    queries = ["a cat", "green grass", "blue sky"]
    out = san.predict(images[0], classes=queries, return_scores=True)[0]
    assert out["seg_scores"].shape == (3, 100, 72)
    assert out["seg"].shape == (100, 72) and int(out["seg"].max()) < 3
    assert san.heads["seg"].num_classes == k  # the classes come back after the call


def test_padding_to_the_size_divisor_is_cropped_back(san) -> None:
    """size_divisor pads the normalised input with zeros, as MMSeg's preprocessor: the same as
    padding the 0-255 image with the mean colour and cropping the scores."""
    san.eval()
    image = torch.randint(0, 256, (1, 3, 80, 112)).float()
    with torch.no_grad():
        padded_inside = san(image)["seg"]
        san.encoder.size_divisor = None
        mean = san.mean.expand(1, 3, 96, 128).clone()
        mean[:, :, :80, :112] = image
        padded_outside = san(mean)["seg"][:, :, :80, :112]
    assert padded_inside.shape == (1, san.heads["seg"].num_classes, 80, 112)
    torch.testing.assert_close(padded_inside, padded_outside, rtol=0, atol=1e-5)


def test_recognition_attn_mask_layout() -> None:
    bias = torch.randn(2, 1, 3, 4, 6)  # (N, heads, Q, h, w), pooled to a 2x3 CLIP grid
    mask = recognition_attn_mask(bias, num_heads=2, grid=(2, 3))
    q, total = 3, 3 + 1 + 6
    assert mask.shape == (2 * 2, total, total)
    pooled = F.adaptive_max_pool2d(bias[:, 0], (2, 3)).flatten(2)
    torch.testing.assert_close(mask[0, :q, q + 1 :], pooled[0])
    torch.testing.assert_close(mask[1, :q, q + 1 :], pooled[0])  # one bias for both heads
    torch.testing.assert_close(mask[2, :q, q + 1 :], pooled[1])
    eye = torch.eye(q, dtype=torch.bool)
    assert (mask[:, :q, :q][:, eye] == 0).all() and (mask[:, :q, :q][:, ~eye] == -100).all()
    assert (mask[:, q:, :q] == -100).all() and (mask[:, :q, q] == -100).all()
    assert (mask[:, q:, q:] == 0).all()


def test_short_training_run(compose_cfg) -> None:
    from segkit.cli.train import train

    cfg = compose_cfg([*TINY_SAN, *TINY, *tiny_shapes(num_train=8, num_val=2)])
    miou = train(cfg)
    assert 0.0 <= float(miou) <= 1.0
