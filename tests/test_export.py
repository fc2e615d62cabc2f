"""segkit-export: ONNX and torch.export files that compute what the PyTorch model computes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, TINY_CLIP, tiny_shapes
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from test_model_zoo import MODELS
from test_openvocab_catseg import TINY_CATSEG
from test_openvocab_san import TINY_SAN

import segkit
from segkit.cli._hydra import CONFIG_DIR
from segkit.cli.export import export
from segkit.export import (
    DEFAULT_SIZES,
    MetadataError,
    ParityError,
    check_parity,
    export_model,
    exported_runner,
)
from segkit.export.program import load_program

pytestmark = pytest.mark.usefixtures("release_memory")

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


# ---------------------------------------------------------------- a trained tiny checkpoint
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A 2-step SegFormer run on the embedded shapes data (7 classes): its last checkpoint."""
    from segkit.cli.train import train

    tmp = tmp_path_factory.mktemp("export_run")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                f"paths.cache_dir={tmp / 'cache'}",
                f"paths.log_dir={tmp / 'logs'}",
                *TINY,
                *tiny_shapes(),
                "trainer.max_steps=2",
            ],
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp / "out")
    train(cfg)
    return Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"


def _export_cfg(**values):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="export", overrides=["ckpt_path=unset"])
    with open_dict(cfg):
        cfg.update(values)
    return cfg


@pytest.fixture(scope="module")
def onnx_file(checkpoint, tmp_path_factory) -> tuple[Path, str]:
    """The checkpoint exported by the CLI function; returns the file and what it printed."""
    import contextlib
    import io

    output = tmp_path_factory.mktemp("onnx") / "model.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        export(_export_cfg(ckpt_path=str(checkpoint), format="onnx", output=str(output)))
    return output, printed.getvalue()


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB image with a disc (labels vary over it, unlike noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([xx * 255 // w, yy * 255 // h, np.full((h, w), 90)], -1)
    disc = (yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (min(h, w) / 4) ** 2
    image[disc] = rng.integers(0, 256, 3)
    return image.astype(np.uint8)


def test_cli_onnx_export_prints_parity_and_predicts_like_the_checkpoint(
    checkpoint, onnx_file
) -> None:
    path, printed = onnx_file
    assert f"wrote {path}" in printed
    assert " 128x128 " in printed and "  97x131 " in printed and ": OK" in printed, printed

    exported, model = segkit.load(path), segkit.load(checkpoint)
    assert exported.class_names == model.class_names and exported.palette == model.palette
    assert exported.ignore_index == model.ignore_index and exported.open_vocabulary is False
    assert exported.metadata.exporter == "onnx/torchscript" and exported.metadata.opset == 18
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert exported.metadata.model_config == ckpt["segkit"]["config"]["model"]

    image = _image(70, 90)
    got = exported.predict(image, return_scores=True)[0]
    want = model.predict(image, return_scores=True)[0]
    assert got["seg"].dtype == torch.int64 and got["seg"].shape == (70, 90)
    assert torch.equal(got["seg"], want["seg"])
    torch.testing.assert_close(got["seg_scores"], want["seg_scores"], atol=1e-4, rtol=0)
    # The other accepted input forms: a (3, H, W) tensor, an (N, 3, H, W) batch, a list
    tensor = torch.from_numpy(image).permute(2, 0, 1)
    assert torch.equal(exported.predict(tensor)[0]["seg"], want["seg"])
    both = exported.predict([image, tensor[None].repeat(2, 1, 1, 1)])
    assert len(both) == 3 and all(torch.equal(r["seg"], want["seg"]) for r in both)
    with pytest.raises(TypeError, match="baked in at export"):
        exported.predict(image, classes=["a", "b"])


def test_one_onnxruntime_session_takes_any_size_and_batch(onnx_file) -> None:
    session = ort.InferenceSession(str(onnx_file[0]), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)"
    assert [o.name for o in session.get_outputs()] == ["labels", "scores"]
    for shape in ((3, 3, 61, 77), (1, 3, 150, 40)):
        images = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
        labels, scores = session.run(None, {"images": images})
        assert labels.shape == (shape[0], *shape[2:]) and labels.dtype == np.int64
        assert scores.shape == (shape[0], 7, *shape[2:]) and scores.dtype == np.float32
        np.testing.assert_array_equal(labels, scores.argmax(1))


def test_damaged_or_foreign_onnx_files_give_clear_errors(onnx_file, tmp_path, monkeypatch) -> None:
    path = onnx_file[0]
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated, corrupt or not ONNX"):
        segkit.load(truncated)

    foreign = onnx.load(path)
    del foreign.metadata_props[:]
    onnx.save(foreign, tmp_path / "foreign.onnx")
    with pytest.raises(MetadataError, match="no segkit metadata"):
        segkit.load(tmp_path / "foreign.onnx")

    tampered = onnx.load(path)
    for prop in tampered.metadata_props:
        if prop.key == "palette":
            prop.value = "[[0, 0"
    onnx.save(tampered, tmp_path / "tampered.onnx")
    with pytest.raises(MetadataError, match="unreadable segkit metadata"):
        segkit.load(tmp_path / "tampered.onnx")

    with pytest.raises(FileNotFoundError, match="ONNX file not found"):
        segkit.load(tmp_path / "missing.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install segkit\[export\]"):
        segkit.load(path)


def test_cli_torch_export_program_runs_with_the_metadata(checkpoint, tmp_path, capsys) -> None:
    output = tmp_path / "model.pt2"
    export(_export_cfg(ckpt_path=str(checkpoint), format="torch_export", output=str(output)))
    printed = capsys.readouterr().out
    assert f"wrote {output}" in printed and "  97x131 " in printed and ": OK" in printed
    program, metadata = load_program(output)
    model = segkit.load(checkpoint)
    assert metadata.class_names == model.class_names and metadata.exporter == "torch.export"
    image = _image(70, 90, seed=2)
    labels, scores = program.module()(
        torch.from_numpy(image).permute(2, 0, 1)[None].repeat(3, 1, 1, 1)
    )
    want = model.predict(image, return_scores=True)[0]
    assert labels.shape == (3, 70, 90) and torch.equal(labels[2], want["seg"])
    torch.testing.assert_close(scores[0], want["seg_scores"], atol=1e-4, rtol=0)


def test_cli_rejects_bad_input_with_clear_errors(checkpoint, tmp_path, monkeypatch, capsys) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        export(_export_cfg(ckpt_path=str(tmp_path / "nope.ckpt")))
    with pytest.raises(ValueError, match="format='tflite'"):
        export(_export_cfg(ckpt_path=str(checkpoint), format="tflite"))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="cannot create the output folder"):
        export(_export_cfg(ckpt_path=str(checkpoint), output=str(blocker / "model.onnx")))
    with pytest.raises(ValueError, match=r"must end with \.pt2"):
        export(_export_cfg(ckpt_path=str(checkpoint), format="torch_export", output="m.onnx"))
    with pytest.raises(TypeError, match="open-vocabulary"):
        export(
            _export_cfg(ckpt_path=str(checkpoint), classes=["cat"], output=str(tmp_path / "x.onnx"))
        )
    # The console entry point: one line on stderr and exit status 1, no traceback
    from segkit.cli.export import main

    monkeypatch.setattr(
        sys,
        "argv",
        [
            "segkit-export",
            f"ckpt_path={tmp_path / 'nope.ckpt'}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ],
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    assert "segkit-export: error: checkpoint not found" in capsys.readouterr().err


def test_parity_check_fails_on_a_different_model_naming_the_numbers(checkpoint, onnx_file) -> None:
    model = segkit.load(checkpoint)
    with torch.no_grad():
        model.heads["seg"].conv_seg.bias[3] += 0.5  # scores of class 3 off by 0.5
    with pytest.raises(ParityError, match=r"scores max \|diff\| 0\.5 > 0\.00"):
        check_parity(model, exported_runner(onnx_file[0]), sizes=[(64, 64)], batch=1)


@pytest.mark.parametrize(
    "exporter", ["torchscript", pytest.param("dynamo", marks=pytest.mark.slow)]
)
def test_keep_ratio_resize_is_in_the_graph_and_slide_is_noted(
    compose_cfg, tmp_path, exporter: str
) -> None:
    """``test_cfg.resize`` changes the network's input size per image (128x128 -> 64x64,
    97x131 -> 64x86): parity with ``predict`` needs the same resize in the graph. Sliding-window
    inference is not exported: the metadata says so and parity is with whole-image inference."""
    cfg = compose_cfg(
        [
            "model=segformer",
            "model.test_cfg.resize=[96,64]",
            "model.test_cfg.mode=slide",
            "model.test_cfg.crop_size=[64,64]",
            "model.test_cfg.stride=[48,48]",
        ]
    )
    model = _random_model(cfg)
    metadata, report = export_model(model, tmp_path / "m.onnx", exporter=exporter, check_batch=1)
    assert report.ok and model.test_cfg.mode == "slide"  # restored after the check
    assert metadata.not_exported == ["sliding-window inference (crop [64, 64], stride [48, 48])"]


def test_open_vocabulary_model_exports_its_classes_and_threshold(compose_cfg, tmp_path) -> None:
    cfg = compose_cfg(
        ["model=clearclip", *TINY_CLIP, "model.heads.seg.text_encoder.templates=single"]
    )
    model = _random_model(cfg)
    model.set_classes(["cat", "grass", "sky"])
    # A threshold that leaves about half of the pixels unmatched (-1)
    scores = model.predict(_image(64, 80), return_scores=True)[0]["seg_scores"]
    model.heads["seg"].threshold = float(scores.softmax(0).amax(0).median())
    path = tmp_path / "ov.onnx"
    # open_clip's attention reshapes with Python sizes, which the TorchScript exporter freezes
    metadata, report = export_model(model, path, exporter="dynamo", check_batch=1)
    assert (
        report.ok and metadata.open_vocabulary and metadata.class_names == ["cat", "grass", "sky"]
    )
    exported = segkit.load(path)
    labels = exported.predict(_image(64, 80))[0]["seg"]
    want = model.predict(_image(64, 80))[0]["seg"]
    assert torch.equal(labels, want) and (want == -1).any() and (want >= 0).any()
    # The text tower is not in the file: the embeddings are constants
    assert "text_encoder.clip" not in " ".join(i.name for i in onnx.load(path).graph.initializer)


# ---------------------------------------------------------------- every model config
def _model_cfg(compose_cfg, name: str, *overrides: str):
    """The config of ``name`` with random weights (tiny CLIP towers for open-vocabulary ones)."""
    if name.startswith("catseg"):
        extra = TINY_CATSEG[1:]
    elif name.startswith("san"):
        extra = TINY_SAN[1:]
    elif name in OPEN_CLIP_TOWERS:
        extra = [*TINY_CLIP, "model.heads.seg.text_encoder.templates=single"]
    else:
        extra = FIXED_SIZE.get(name, [])
    return compose_cfg([f"model={name}", *extra, *overrides])


def _random_model(cfg):
    torch.manual_seed(0)
    return instantiate(cfg.model, _convert_="partial").eval()


OPEN_CLIP_TOWERS = ("clearclip", "maskclip", "sclip")
# Encoders built for one input size (BEiT: 640, MAE: 512), rebuilt for 128x128 as in
# test_model_zoo: their graph takes that size only, so parity is checked there alone.
FIXED_SIZE = {name: ["model.encoder.img_size=128"] for name in ("upernet_beit-b", "upernet_mae-b")}

# Light configs (TorchScript exporter, a few seconds each, measured: docs/deployment.md): the
# default run; every other config runs in the slow job.
DEFAULT_EXPORT = {
    "cgnet_m3n21",
    "ddrnet_23-slim",
    "erfnet",
    "pspnet_mobilenet-v2",  # adaptive pooling to 1, 2, 3 and 6 bins (ops/adaptive_pool.py)
    "segformer",
    "segformer_b0",
    "segformer_depth",
    "segformer_depth_only",
    "stdc1",
}
# Measured: the TorchScript exporter cannot export these with dynamic sizes (reshapes by sizes
# computed in Python: nn.MultiheadAttention, timm ViTs); the dynamo one can.
# The test goes to it directly (exporter="auto" would first spend seconds on the TorchScript try).
DYNAMO = {
    "clearclip",
    "depth_anything_vit-l",
    "maskclip",
    "sclip",
    "segmenter_vit-l",
    "setr_vit-l_mla",
    "setr_vit-l_pup",
}
_LRASPP = (
    "avg_pool2d whose kernel depends on the input size (min(49, feature size), MMSegmentation's "
    "LR-ASPP image pooling): ONNX AveragePool takes a constant kernel; the TorchScript exporter "
    "fails on it ('Failed to export a node onnx::Gather' in LRASPPDecoder.forward), the dynamo "
    "exporter gave no result within 400 s"
)
_HAM = (
    "SegNeXt's Hamburger draws its NMF bases from torch.rand at every forward (MMSegmentation's "
    "rand_init=True), so no two runs agree, PyTorch's own included (ONNX: RandomUniform)"
)
_SAN = (
    "adaptive_max_pool2d of the attention bias to the CLIP grid (SAN, san.py) has no ONNX "
    "translation for dynamic sizes: TorchScript exporter 'adaptive pooling, since output_size is "
    "not constant', dynamo exporter 'Failed to decompose the FX graph for ONNX compatibility'"
)
_UNET = (
    "UNet's decoder matches skip-connection sizes with a branch on the input size; both exporters "
    "freeze it at the example size: ONNX Concat 'mismatched dimensions of 16 and 12' at 97x131"
)
XFAIL: dict[str, str] = {
    "dmnet_r50": (
        "DMNet convolves with filters generated from the input (F.conv2d with a computed weight): "
        "TorchScript exporter 'ONNX export of convolution for kernel of unknown shape', dynamo "
        "exporter 'Failed to convert the exported program to an ONNX model'"
    ),
    "isanet_r50": (
        "ISA's patch grid is computed in Python from the input size: the TorchScript exporter "
        "freezes its Reshape (onnxruntime: 'The input tensor cannot be reshaped' at 97x131), so "
        "does the dynamo exporter"
    ),
    "mask2former_swin-t": (
        "Mask2Former on Swin-T: the TorchScript exporter's graph fails the parity check at "
        "97x131 (a size frozen at export); the dynamo exporter finds Swin's window padding "
        "inconsistent with the pixel decoder's level sizes ('The following inconsistencies were "
        "found: Eq(...)') after 12 minutes"
    ),
    "psanet_r50": (
        "PSANet's point-wise attention mask is gathered for the feature size: both exporters' "
        "graphs fail the parity check at 97x131 (labels agree on 98.3%, scores differ by 2% of "
        "their range)"
    ),
    "twins_svt-s_upernet": (
        "Twins-SVT: TorchScript exporter: scores differ at 97x131 (a size frozen at export); "
        "dynamo exporter: scaled_dot_product_attention of its grouped attention "
        "'only 4D query, key, and value are supported'"
    ),
    "twins_svt-s_fpn": (
        "TorchScript exporter: scores differ at 97x131 (a size frozen at export); dynamo "
        "exporter: 'Failed to convert the exported program to an ONNX model'"
    ),
    "unet_deeplabv3": _UNET,
    "unet_fcn": _UNET,
    "unet_pspnet": _UNET,
    "san_vit-b16": _SAN,
    "san_vit-l14": _SAN,
    "lraspp_mobilenet-v3-large": _LRASPP,
    "lraspp_mobilenet-v3-small": _LRASPP,
    "segnext_mscan-b": _HAM,
    "segnext_mscan-l": _HAM,
    "segnext_mscan-s": _HAM,
    "segnext_mscan-t": _HAM,
}


# A minute or more each here (measured, or ViT-B/L-sized): they run with every other config in
# the long zoo job (`pytest -m zoo512`), keeping the slow job near 15 minutes on 2 cores.
HEAVY = {
    "catseg_vit-b16",
    "catseg_vit-l14",
    "depth_anything_vit-b",
    "depth_anything_vit-l",
    "dpt_vit-b",
    "segmenter_vit-b",
    "segmenter_vit-l",
    "segmenter_vit-t",
    "setr_vit-l_mla",
    "setr_vit-l_naive",
    "setr_vit-l_pup",
    "upernet_beit-b",
    "upernet_convnext-b",
    "upernet_mae-b",
    "upernet_swin-b",
    "upernet_vit-b",
}


def _zoo_params():
    for name in MODELS:
        marks = []
        if name in XFAIL:
            marks.append(pytest.mark.xfail(strict=True, reason=XFAIL[name]))
        if name in HEAVY:
            marks.append(pytest.mark.zoo512)
        elif name not in DEFAULT_EXPORT:
            marks.append(pytest.mark.slow)
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_zoo_params()))
def test_every_model_config_exports_to_onnx(compose_cfg, tmp_path, name: str) -> None:
    """Random weights, exported as ``segkit-export`` does (``exporter=auto``; known outcomes go to
    their exporter directly), parity with PyTorch at 128x128 and 97x131 (batch 1; the graph was
    traced with batch 2, so a frozen batch size fails too)."""
    cfg = _model_cfg(compose_cfg, name)
    model = _random_model(cfg)
    config = OmegaConf.to_container(cfg.model, resolve=True)
    exporter = "dynamo" if name in DYNAMO else "torchscript" if name in XFAIL else "auto"
    path = tmp_path / f"{name}.onnx"
    sizes = [(128, 128)] if name in FIXED_SIZE else DEFAULT_SIZES
    try:
        metadata, report = export_model(
            model, path, config=config, exporter=exporter, check_sizes=sizes, check_batch=1
        )
    finally:
        # The files reach 1 GB (ViT-L); ~100 of them filled /tmp, so none is
        # kept, whatever the outcome (an expected failure's included).
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert report is not None and report.ok
    assert metadata.outputs == (["labels", "scores"] if "seg" in model.heads else []) + (
        ["depth"] if "depth" in model.heads else []
    )
    print(f"{name} ({metadata.exporter})\n{report.table()}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, overrides",
    [
        ("segformer", ["model.test_cfg.resize=[160,96]"]),  # the keep-ratio resize on SymInts
        ("deeplabv3plus_r50", []),
        ("segformer_depth", []),
        ("clearclip", []),
    ],
)
def test_torch_export_of_representative_configs(compose_cfg, tmp_path, name, overrides) -> None:
    cfg = _model_cfg(compose_cfg, name, *overrides)
    model = _random_model(cfg)
    path = tmp_path / f"{name}.pt2"
    metadata, report = export_model(model, path, "torch_export", check_batch=1)
    assert report.ok and metadata.exporter == "torch.export"
    _, loaded = load_program(path)
    assert loaded == metadata
    print(f"{name}\n{report.table()}")
