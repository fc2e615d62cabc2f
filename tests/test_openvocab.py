"""Open-vocabulary core: CLIP towers, prompt ensembling, the text cache, free-text classes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_CLIP, TINY_CLIP_KWARGS
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

import segkit
from segkit.checkpoints.io import save_checkpoint
from segkit.models.openvocab import (
    NO_CLASS,
    CLIPTextEncoder,
    PretrainedUnavailableError,
    create_clip,
    prompt_templates,
)

QUERIES = ["a cat", "green grass", "blue sky", "a red car", "tarmac"]


def _tiny_kwargs() -> dict:
    return {
        "embed_dim": 64,
        "vision_cfg": {
            "image_size": 64,
            "layers": 2,
            "width": 64,
            "patch_size": 16,
            "head_width": 32,
        },
        "text_cfg": {
            "context_length": 32,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
    }


@pytest.fixture(scope="module")
def text_encoder() -> CLIPTextEncoder:
    torch.manual_seed(0)
    return CLIPTextEncoder(
        "ViT-B-16", None, templates="imagenet_simple", model_kwargs=_tiny_kwargs()
    )


@pytest.fixture
def clearclip(compose_cfg):
    cfg = compose_cfg(["model=clearclip", *TINY_CLIP, "data=shapes"])
    torch.manual_seed(0)
    return instantiate(cfg.model, _convert_="partial").eval()


def test_templates_are_the_clip_paper_sets() -> None:
    assert len(prompt_templates("imagenet")) == 80
    assert prompt_templates("single") == ("a photo of a {}.",)
    assert all(t.count("{}") == 1 for t in prompt_templates("imagenet_simple"))
    with pytest.raises(ValueError, match="exactly one"):
        prompt_templates(["a photo"])


def test_embeddings_are_ensembled_over_templates(text_encoder) -> None:
    per_template = text_encoder.encode(["a cat", "a dog"])
    t = len(text_encoder.templates)
    assert per_template.shape == (2, t, 64)
    assert torch.allclose(per_template.norm(dim=-1), torch.ones(2, t), atol=1e-5)
    direct = text_encoder.encode_prompts([tpl.format("a dog") for tpl in text_encoder.templates])
    assert torch.allclose(per_template[1], direct, atol=1e-5)
    ensembled = text_encoder(["a cat", "a dog"])
    expected = torch.nn.functional.normalize(per_template.mean(1), dim=-1)
    assert torch.allclose(ensembled, expected)
    assert not torch.allclose(ensembled[0], ensembled[1])


def test_cache_is_hit_on_a_second_call_and_queries_are_independent(text_encoder) -> None:
    text_encoder.clear_cache()
    hits, misses = text_encoder.hits, text_encoder.misses
    first = text_encoder(QUERIES)
    assert (text_encoder.hits - hits, text_encoder.misses - misses) == (0, len(QUERIES))
    calls = []
    handle = text_encoder.clip.transformer.register_forward_hook(lambda *a: calls.append(1))
    try:
        second = text_encoder(QUERIES)
    finally:
        handle.remove()
    assert not calls, "the text transformer ran although every name was cached"
    assert text_encoder.hits - hits == len(QUERIES)
    assert torch.equal(first, second)
    # Adding a query encodes only the new name and leaves the others' embeddings unchanged.
    more = text_encoder([*QUERIES, "a bicycle"])
    assert torch.equal(more[: len(QUERIES)], first)
    assert text_encoder.misses - misses == len(QUERIES) + 1
    # Without the cache, a name's embedding still does not depend on the other names.
    text_encoder.clear_cache()
    alone = text_encoder(["tarmac"])
    text_encoder.clear_cache()
    together = text_encoder(["a cat", "tarmac", "blue sky"])
    assert torch.allclose(alone[0], together[1], atol=1e-6)


def test_cache_goes_stale_when_the_weights_change(text_encoder) -> None:
    before = text_encoder(["a cat"]).clone()
    with torch.no_grad():
        text_encoder.clip.ln_final.weight.mul_(2.0).add_(0.5)
    try:
        after = text_encoder(["a cat"])
        assert not torch.allclose(before, after), "a stale cached embedding was returned"
    finally:
        with torch.no_grad():
            text_encoder.clip.ln_final.weight.sub_(0.5).div_(2.0)
    assert torch.allclose(text_encoder(["a cat"]), before, atol=1e-6)


def test_permuting_the_queries_permutes_the_labels(clearclip) -> None:
    torch.manual_seed(1)
    image = torch.randint(0, 256, (3, 80, 112))
    base = clearclip.predict(image, classes=QUERIES, return_scores=True)[0]
    order = [3, 0, 4, 1, 2]
    permuted = clearclip.predict(image, classes=[QUERIES[i] for i in order], return_scores=True)[0]
    assert torch.allclose(permuted["seg_scores"], base["seg_scores"][order], atol=1e-5)
    inverse = torch.as_tensor(np.argsort(order))
    assert torch.equal(inverse[base["seg"]], permuted["seg"])
    assert len(base["seg"].unique()) > 1, "a constant prediction tests nothing"
    # predict(classes=) is for one call: the model's own classes come back afterwards.
    assert clearclip.class_names == [
        "background",
        "disc",
        "square",
        "triangle",
        "ring",
        "cross",
        "star",
    ]


def test_adding_a_query_keeps_the_other_scores(clearclip) -> None:
    image = torch.randint(0, 256, (3, 64, 64), generator=torch.Generator().manual_seed(2))
    few = clearclip.predict(image, classes=QUERIES[:3], return_scores=True)[0]["seg_scores"]
    many = clearclip.predict(image, classes=QUERIES, return_scores=True)[0]["seg_scores"]
    assert torch.allclose(few, many[:3], atol=1e-5)  # logits are per query: nothing is shared


def test_threshold_marks_pixels_that_match_no_query(clearclip) -> None:
    image = torch.randint(0, 256, (3, 64, 64), generator=torch.Generator().manual_seed(3))
    free = clearclip.predict(image, classes=QUERIES)[0]["seg"]
    strict = clearclip.predict(image, classes=QUERIES, threshold=0.999)[0]["seg"]
    assert (free >= 0).all()
    assert (strict == NO_CLASS).all()  # no pixel is 99.9% sure among 5 random-weight queries
    assert clearclip.heads.seg.threshold is None


def test_closed_vocabulary_models_refuse_classes(compose_cfg) -> None:
    model = instantiate(compose_cfg(["model=segformer"]).model, _convert_="partial")
    assert not model.open_vocabulary
    with pytest.raises(TypeError, match="open-vocabulary"):
        model.predict(torch.zeros(3, 32, 32), classes=["cat"])


def test_pretrained_path_loads_a_saved_clip(tmp_path: Path) -> None:
    torch.manual_seed(3)
    reference = create_clip("ViT-B-16", None, model_kwargs=_tiny_kwargs())
    path = tmp_path / "clip.pt"
    torch.save(reference.state_dict(), path)
    model = segkit.from_clip(
        ["cat", "sky"],
        pretrained=str(path),
        templates="single",
        overrides=[f"model.encoder.model_kwargs={TINY_CLIP_KWARGS}"],
    )
    assert torch.equal(model.encoder.visual.proj, reference.visual.proj)
    text = model.heads.seg.text_encoder.clip
    assert torch.equal(text.text_projection, reference.text_projection)
    assert torch.equal(
        text.transformer.resblocks[1].mlp.c_fc.weight,
        reference.transformer.resblocks[1].mlp.c_fc.weight,
    )
    # A file of another architecture is refused with the file named.
    torch.manual_seed(4)
    other = create_clip("ViT-B-16", None, model_kwargs={**_tiny_kwargs(), "embed_dim": 32})
    bad = tmp_path / "other.pt"
    torch.save(other.state_dict(), bad)
    with pytest.raises(ValueError, match=r"other\.pt"):
        create_clip("ViT-B-16", str(bad), model_kwargs=_tiny_kwargs())


def test_pretrained_tag_without_network_fails_fast_and_says_where_to_put_the_file(
    monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # nothing cached here
    start = time.monotonic()
    with pytest.raises(PretrainedUnavailableError) as err:
        create_clip("ViT-B-16", "openai", cache_dir=str(tmp_path / "hub"))
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "pretrained=/path/to" in message and "timm/vit_base_patch16_clip_224.openai" in message
    with pytest.raises(ValueError, match="no pretrained tag"):
        create_clip("ViT-B-16", "not-a-tag", cache_dir=str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        create_clip("ViT-B-16", str(tmp_path / "missing.pt"))


def test_open_vocabulary_checkpoint_loads_offline_and_infers_free_text(
    clearclip, compose_cfg, tmp_path: Path
) -> None:
    from segkit.cli.infer import infer

    cfg = compose_cfg(["model=clearclip", *TINY_CLIP, "data=shapes"])
    config = OmegaConf.to_container(cfg.model, resolve=True)
    config["encoder"]["pretrained"] = "openai"  # must not be fetched: the weights are in the file
    ckpt = save_checkpoint(tmp_path / "ov.ckpt", config, clearclip.state_dict())
    model = segkit.load(ckpt)
    assert model.open_vocabulary
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    expected = clearclip.predict(image, classes=QUERIES)[0]["seg"]
    assert torch.equal(model.predict(image, classes=QUERIES)[0]["seg"], expected)

    Image.fromarray(image).save(tmp_path / "photo.png")
    names = tmp_path / "names.txt"
    names.write_text("# queries\n" + "\n".join(QUERIES) + "\n")
    infer_cfg = compose_cfg(
        [
            f"ckpt_path={ckpt}",
            f"input={tmp_path / 'photo.png'}",
            f"classes={names}",
            f"output={tmp_path / 'pred'}",
        ],
        config_name="infer",
    )
    (written,) = infer(infer_cfg)
    assert np.array_equal(np.asarray(Image.open(written)), expected.numpy().astype(np.uint8))
    assert (tmp_path / "pred" / "photo_overlay.jpg").is_file()
    listed = compose_cfg(
        [
            f"ckpt_path={ckpt}",
            f"input={tmp_path / 'photo.png'}",
            "classes=[a cat,tarmac]",
            "threshold=0.999",
            f"output={tmp_path / 'pred2'}",
        ],
        config_name="infer",
    )
    (written,) = infer(listed)
    assert (np.asarray(Image.open(written)) == 255).all()  # nothing that sure: no class


def test_infer_refuses_classes_for_a_closed_vocabulary_checkpoint(compose_cfg, tmp_path) -> None:
    from segkit.cli.infer import infer

    cfg = compose_cfg(["model=segformer"])
    model = instantiate(cfg.model, _convert_="partial")
    ckpt = save_checkpoint(
        tmp_path / "m.ckpt", OmegaConf.to_container(cfg.model, resolve=True), model.state_dict()
    )
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "x.png")
    infer_cfg = compose_cfg(
        [f"ckpt_path={ckpt}", f"input={tmp_path / 'x.png'}", "classes=[cat]"], config_name="infer"
    )
    with pytest.raises(ValueError, match="open-vocabulary"):
        infer(infer_cfg)


def test_dense_embeddings_follow_clip_at_its_own_input_size() -> None:
    """With the unmodified last block, patch embeddings are open_clip's tokens through ln_post
    and proj, and any input size works (position embedding resized)."""
    from segkit.models.openvocab import CLIPImageEncoder

    torch.manual_seed(5)
    encoder = CLIPImageEncoder(
        "ViT-B-16", None, dense="none", out_indices=[0], model_kwargs=_tiny_kwargs()
    )
    x = torch.randn(2, 3, 64, 64)
    block0, dense = encoder(x)
    visual = encoder.visual
    _, tokens = visual._pool(visual.transformer(visual._embeds(x)))
    expected = (tokens @ visual.proj).transpose(1, 2).reshape(2, 64, 4, 4)
    assert torch.allclose(dense, expected, atol=1e-5)
    assert block0.shape == (2, 64, 4, 4)
    assert encoder(torch.randn(1, 3, 96, 160))[-1].shape == (1, 64, 6, 10)


def test_clearclip_attention_is_query_query_attention() -> None:
    """Independent check: nn.MultiheadAttention whose key projection is the query projection."""
    import copy

    from segkit.models.openvocab.image import dense_attention

    torch.manual_seed(6)
    attn = torch.nn.MultiheadAttention(64, 2, batch_first=True)
    x = torch.randn(2, 17, 64)
    qq = copy.deepcopy(attn)
    with torch.no_grad():
        qq.in_proj_weight[64:128] = attn.in_proj_weight[:64]
        qq.in_proj_bias[64:128] = attn.in_proj_bias[:64]
    expected = qq(x, x, x, need_weights=False)[0]
    assert torch.allclose(dense_attention(attn, x, "clearclip"), expected, atol=1e-5)
    values = torch.nn.functional.linear(x, attn.in_proj_weight[128:], attn.in_proj_bias[128:])
    assert torch.allclose(dense_attention(attn, x, "maskclip"), attn.out_proj(values), atol=1e-6)
    assert not torch.allclose(dense_attention(attn, x, "sclip"), expected, atol=1e-3)


def test_eval_on_other_data_takes_its_class_names_and_reports_unseen_split(
    clearclip, compose_cfg, tmp_path: Path
) -> None:
    """An open-vocabulary checkpoint trained on two names evaluates on data=shapes's 7 classes,
    with mIoU on seen/unseen classes and their harmonic mean."""
    from conftest import tiny_shapes

    from segkit.cli.evaluate import evaluate

    cfg = compose_cfg(["model=clearclip", *TINY_CLIP, "data=shapes"])
    config = OmegaConf.to_container(cfg.model, resolve=True)
    config["class_names"] = config["heads"]["seg"]["class_names"] = ["thing", "stuff"]
    config["palette"] = None
    ckpt = save_checkpoint(tmp_path / "ov.ckpt", config, clearclip.state_dict())
    eval_cfg = compose_cfg(
        [
            f"ckpt_path={ckpt}",
            "data=shapes",
            *tiny_shapes(num_val=4),
            "data.num_workers=0",
            "trainer.enable_progress_bar=false",
            "unseen_classes=[star,ring]",
        ],
        config_name="eval",
    )
    results = evaluate(eval_cfg)
    per_class = json.loads((Path(eval_cfg.paths.output_dir) / "metrics.json").read_text())[
        "per_class"
    ]
    assert list(per_class["IoU"]) == [
        "background",
        "disc",
        "square",
        "triangle",
        "ring",
        "cross",
        "star",
    ]
    seen, unseen = results["mIoU_seen"], results["mIoU_unseen"]
    assert results["hIoU"] == pytest.approx(2 * seen * unseen / (seen + unseen), rel=1e-5)
