"""Encoders, decoders, heads and the Segmentor: shapes, parameter counts, inference modes."""

from __future__ import annotations

import pytest
import timm
import torch
from hydra.utils import instantiate

import segkit  # noqa: F401  (registers MiT in timm)
from segkit.models import InferenceConfig, Segmentor
from segkit.models.inference import slide_inference, whole_inference


@pytest.mark.parametrize("name", ["mit_b0", "mit_b1", "mit_b2"])
def test_mit_is_a_timm_features_only_model(name: str) -> None:
    model = timm.create_model(name, features_only=True)
    x = torch.randn(1, 3, 70, 90)  # not a multiple of 32
    feats = model(x)
    assert [f.shape[1] for f in feats] == model.feature_info.channels()
    for f, r in zip(feats, model.feature_info.reduction()):
        assert f.shape[2:] == (-(-70 // r), -(-90 // r))
    assert name in timm.list_models("mit_*")


@pytest.mark.parametrize(
    ("name", "expected"),
    # MMSegmentation's MixVisionTransformer parameter counts (its mit_b* backbones)
    [("mit_b0", 3_319_392), ("mit_b2", 24_196_288), ("mit_b5", 81_443_008)],
)
def test_mit_parameter_counts(name: str, expected: int) -> None:
    with torch.device("meta"):
        model = timm.create_model(name, features_only=True)
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize(
    ("model_name", "expected", "expected_no_aux"),
    # MMSegmentation 1.2.2 with 150 classes (shared/reference/mmseg/README.md)
    [("segformer", 3_753_718, 3_753_718), ("deeplabv3plus_r50", 43_690_748, 41_292_390)],
)
def test_parameter_counts_match_mmsegmentation(
    compose_cfg, model_name, expected, expected_no_aux
) -> None:
    cfg = compose_cfg([f"model={model_name}", "data=ade20k", "data.root=/nonexistent"])
    with torch.device("meta"):
        model = instantiate(cfg.model, _convert_="partial")
    total = sum(p.numel() for p in model.parameters())
    aux = sum(p.numel() for p in model.auxiliary.parameters())
    assert total == expected
    assert total - aux == expected_no_aux


@pytest.mark.parametrize("model_name", ["segformer", "deeplabv3plus_r50"])
def test_forward_any_size_and_loss_backward(compose_cfg, model_name: str) -> None:
    cfg = compose_cfg([f"model={model_name}"])
    model = instantiate(cfg.model, _convert_="partial").train()
    images = torch.randint(0, 256, (2, 3, 66, 98)).float()
    target = torch.randint(0, 7, (2, 66, 98))
    target[:, :5] = 255
    outputs = model(images)
    assert outputs["seg"].shape[:2] == (2, 7)
    losses = model.loss(outputs, {"mask": target})
    assert set(losses) == {"seg/loss_ce"} | ({"aux.fcn/loss_ce"} if model.auxiliary else set())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.decoder.parameters())
    model.eval()
    pred = model.predict(images[0].to(torch.uint8))
    assert pred[0]["seg"].shape == (66, 98)


def _small_segmentor(compose_cfg, test_cfg: dict) -> Segmentor:
    cfg = compose_cfg(["model=segformer"])
    model = instantiate(cfg.model, _convert_="partial")
    model.test_cfg = InferenceConfig(**test_cfg)
    return model.eval()


def test_slide_equals_whole_when_one_crop_covers_the_image(compose_cfg) -> None:
    model = _small_segmentor(
        compose_cfg, {"mode": "slide", "crop_size": [96, 128], "stride": [64, 64]}
    )
    images = torch.randint(0, 256, (2, 3, 96, 128)).float()
    whole = whole_inference(model._eval_forward, images)["seg"]
    slide = model.inference(images)["seg"]
    torch.testing.assert_close(slide, whole)


def test_slide_covers_every_pixel_and_batches_crops(compose_cfg) -> None:
    model = _small_segmentor(compose_cfg, {})
    calls = []

    def forward(x):
        calls.append(x.shape[0])
        return {"seg": torch.ones(x.shape[0], 2, x.shape[2] // 4, x.shape[3] // 4)}

    images = torch.zeros(2, 3, 100, 150)
    out = slide_inference(forward, images, crop_size=(64, 64), stride=(48, 48), crop_batch_size=5)
    # 2 x 3 windows per image, 2 images = 12 crops in batches of at most 5
    assert calls == [5, 5, 2]
    torch.testing.assert_close(out["seg"], torch.ones(2, 2, 100, 150))
    assert model is not None


def test_flip_tta_of_a_flip_symmetric_model_changes_nothing(compose_cfg) -> None:
    model = _small_segmentor(compose_cfg, {"flip": True, "scales": [1.0]})
    images = torch.randint(0, 256, (1, 3, 64, 64)).float()
    images = torch.cat([images, images.flip(-1)], dim=-1)  # mirror-symmetric image
    tta = model.inference(images)["seg"]
    assert tta.shape == (1, 7, 64, 128)
    model.test_cfg = InferenceConfig(scales=[0.5, 1.0, 1.5])
    assert model.inference(images)["seg"].shape == (1, 7, 64, 128)


def test_invalid_inference_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="crop_size"):
        InferenceConfig(mode="slide")
    with pytest.raises(ValueError, match="whole"):
        InferenceConfig(mode="sliding")


def test_encoder_loads_a_local_checkpoint_and_explains_offline_pretrained(
    tmp_path, monkeypatch
) -> None:
    import huggingface_hub.constants
    from safetensors.torch import save_file

    # No request leaves the machine whatever the environment says: the hub client refuses every
    # HTTP call in offline mode, which it checks at call time.
    monkeypatch.setattr(huggingface_hub.constants, "is_offline_mode", lambda: True)

    from segkit.models.encoders import TimmEncoder

    source = timm.create_model("mit_b0", num_classes=0)
    save_file(source.state_dict(), str(tmp_path / "mit_b0.safetensors"))
    encoder = TimmEncoder("mit_b0", checkpoint=str(tmp_path / "mit_b0.safetensors"))
    torch.testing.assert_close(
        encoder.model.state_dict()["stages_0.patch_embed.proj.weight"],
        source.state_dict()["stages.0.patch_embed.proj.weight"],
    )
    with pytest.raises(FileNotFoundError, match="encoder checkpoint not found"):
        TimmEncoder("mit_b0", checkpoint=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="not in timm's registry"):
        TimmEncoder("mit_b9")
    # offline: the hub download fails fast, with advice
    with pytest.raises(RuntimeError, match=r"model\.encoder\.checkpoint=PATH"):
        TimmEncoder("mit_b0", pretrained=True)
