"""Parameter-group rules and schedules."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from segkit.optim import PolyWarmup, param_groups


def test_segformer_recipe_groups(compose_cfg) -> None:
    cfg = compose_cfg(["model=segformer"])
    model = instantiate(cfg.model, _convert_="partial")
    groups = param_groups(model, lr=1.0, weight_decay=0.01, **cfg.optim.param_groups)
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    # decoder and heads at 10x the learning rate, encoder at 1x
    assert by_param[id(named["decoder.fusion_conv.conv.weight"])]["lr"] == 10.0
    assert by_param[id(named["heads.seg.conv_seg.weight"])]["lr"] == 10.0
    assert by_param[id(named["encoder.model.stages_0.blocks.0.attn.q.weight"])]["lr"] == 1.0
    # no weight decay on LayerNorm / BatchNorm, decay elsewhere
    assert (
        by_param[id(named["encoder.model.stages_0.blocks.0.norm1.weight"])]["weight_decay"] == 0.0
    )
    assert by_param[id(named["decoder.fusion_conv.bn.weight"])]["weight_decay"] == 0.0
    assert (
        by_param[id(named["encoder.model.stages_0.blocks.0.attn.q.weight"])]["weight_decay"] == 0.01
    )
    assert sum(len(g["params"]) for g in groups) == len(named)


def test_decay_rules_match_position_embeddings() -> None:
    model = torch.nn.Module()
    model.pos_embed = torch.nn.Parameter(torch.zeros(1, 4, 8))
    model.proj = torch.nn.Linear(8, 8)
    groups = param_groups(model, 1.0, 0.05, decay_mult={"*pos_embed*": 0.0})
    decay = {g["weight_decay"]: len(g["params"]) for g in groups}
    assert decay == {0.0: 1, 0.05: 2}


def test_poly_with_linear_warmup() -> None:
    f = PolyWarmup(total_steps=100, power=1.0, warmup_steps=10, warmup_ratio=0.1, min_lr_ratio=0.0)
    assert f(0) == pytest.approx(0.1)
    assert f(5) == pytest.approx(0.55)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5)
    assert f(100) == pytest.approx(0.0)
    g = PolyWarmup(total_steps=100, power=0.9, min_lr_ratio=0.01)
    assert g(100) == pytest.approx(0.01) and g(0) == pytest.approx(1.0)
    assert g(50) == pytest.approx(0.99 * 0.5**0.9 + 0.01)
