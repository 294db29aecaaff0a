"""Official checkpoints -> project checkpoints: DINOv2 hub files and the UEM authors' Lightning files."""
import subprocess
import sys

import pytest
import torch
from easydict import EasyDict

from hypood_ros.errors import CheckpointError
from hypood_ros.model import build_dinov2, build_segmentor, load_checkpoint
from hypood_ros.model.convert import config_from_hparams, convert

# Our name -> the official Lightning module's name (written out from the official repository layout).
TO_OFFICIAL_SEGMENTOR = [
    ("backbone.", "backbone.dinov2."),
    ("decoder.dino_mlp.layers.", "backbone.learnable_layers.dino_mlp._layers."),
    ("decoder.", "backbone.learnable_layers."),
    ("head.", "segmentation_head._head."),
]
TO_OFFICIAL_UEM = [("uem.projector.layers.", "ood_projector._layers."), ("uem.classifier.", "ood_head._head.")]

# Keys every official discriminative checkpoint has (names from the official modules).
OFFICIAL_SAMPLE_KEYS = [
    "backbone.dinov2.cls_token", "backbone.dinov2.blocks.0.attn.qkv.weight",
    "backbone.learnable_layers.fpn1.0.weight", "backbone.learnable_layers.fpn1.1.weight",
    "backbone.learnable_layers.fpn1.2.running_var", "backbone.learnable_layers.fpn1.4.weight",
    "backbone.learnable_layers.fpn2.1.weight", "backbone.learnable_layers.fpn3.weight",
    "backbone.learnable_layers.fpn4.0.bias", "backbone.learnable_layers.dino_mlp._layers.2.weight",
    "backbone.learnable_layers.lateral_convs.2.weight", "backbone.learnable_layers.fpn_convs.3.bias",
    "backbone.learnable_layers.heads.0.0.weight", "backbone.learnable_layers.heads.3.9.num_batches_tracked",
    "segmentation_head._head.weight", "segmentation_head._head.bias",
]


def to_official(state, table, prefix=""):
    out = {}
    for key, value in state.items():
        for ours, theirs in table:
            if key.startswith(ours):
                out[prefix + theirs + key[len(ours):]] = value
                break
    return out


def trained_tiny():
    """A tiny model whose BatchNorm statistics and UEM are not at their initial values."""
    torch.manual_seed(3)
    model = build_segmentor("tiny")
    for name, buf in model.named_buffers():
        if "running" in name:
            buf.uniform_(0.5, 1.5)
    return model.eval()


def lightning_file(path, state, hparams):
    torch.save({"epoch": 3, "global_step": 1200, "pytorch-lightning_version": "2.2.0", "state_dict": state,
                "hyper_parameters": hparams, "optimizer_states": [], "lr_schedulers": []}, path)
    return path


def seg_hparams():
    return EasyDict({"MODEL": {"BACKBONE": {"NAME": "DINOv2", "VERSION": "dinov2_vits14",
                                            "INTERM_FEATURES": [0, 1, 2, 3],
                                            "LEARNABLE_PARAMS": {"TYPE": "fpn", "OUTPUT_DIM": 32}},
                               "SEGMENTATION_HEAD": {"NAME": "LinearHead", "NUM_CLASSES": 19},
                               "NUM_CLASSES": 19}})


def outputs(model, x):
    with torch.no_grad():
        return model(x)


def test_uem_lightning_checkpoints_convert_and_reproduce(tmp_path):
    source = trained_tiny()
    ours = source.state_dict()
    seg_state = to_official({k: v for k, v in ours.items() if not k.startswith("uem.")}, TO_OFFICIAL_SEGMENTOR)
    for key in OFFICIAL_SAMPLE_KEYS:
        assert key in seg_state, key
    seg_path = lightning_file(tmp_path / "linear-segmentor.ckpt", seg_state, seg_hparams())
    uem_state = {**{"segmentor." + k: v for k, v in seg_state.items()}, **to_official(ours, TO_OFFICIAL_UEM)}
    assert "ood_projector._layers.4.weight" in uem_state and "ood_head._head.bias" in uem_state
    # The hyper-parameters describe a ViT-B OoD model; --preset overrides them.
    uem_hparams = EasyDict({"MODEL": {"OOD_HEAD": {"NAME": "LinearHead"}, "OOD_PROJECTOR": {"INPUT_DIM": 768}}})
    uem_path = lightning_file(tmp_path / "uem.ckpt", uem_state, uem_hparams)

    x = torch.randn(1, 3, 56, 84)
    want = outputs(source, x)

    convert("uem-segmentor", seg_path, tmp_path / "seg.pt", preset="tiny")
    seg = load_checkpoint(tmp_path / "seg.pt")
    got = outputs(seg, x)
    torch.testing.assert_close(got["seg_logits"], want["seg_logits"], rtol=0, atol=0)
    torch.testing.assert_close(got["embedding"], want["embedding"], rtol=0, atol=0)
    assert seg.metadata["trained"]["uem"] is False

    convert("uem", uem_path, tmp_path / "full.pt", preset="tiny")
    full = load_checkpoint(tmp_path / "full.pt")
    got = outputs(full, x)
    for key in ("seg_logits", "embedding", "uem_logits"):
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)


def test_uem_only_checkpoint_takes_segmentor_separately(tmp_path):
    source = trained_tiny()
    ours = source.state_dict()
    seg_path = lightning_file(tmp_path / "seg.ckpt", to_official(ours, TO_OFFICIAL_SEGMENTOR), seg_hparams())
    uem_path = lightning_file(tmp_path / "uem.ckpt", to_official(ours, TO_OFFICIAL_UEM), {})
    with pytest.raises(CheckpointError, match="--segmentor"):
        convert("uem", uem_path, tmp_path / "x.pt", preset="tiny")
    convert("uem", uem_path, tmp_path / "full.pt", preset="tiny", segmentor_path=seg_path)
    x = torch.randn(1, 3, 42, 42)
    torch.testing.assert_close(outputs(load_checkpoint(tmp_path / "full.pt"), x)["uem_logits"],
                               outputs(source, x)["uem_logits"], rtol=0, atol=0)


def test_dinov2_hub_checkpoint_converts(tmp_path):
    torch.manual_seed(5)
    vit = build_dinov2("dinov2_vits14", embed_dim=64, depth=4, num_heads=2, img_size=224).eval()
    torch.save(vit.state_dict(), tmp_path / "dinov2_tiny_pretrain.pth")
    convert("dinov2", tmp_path / "dinov2_tiny_pretrain.pth", tmp_path / "init.pt", preset="tiny")
    model = load_checkpoint(tmp_path / "init.pt")
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone.forward_features(x)["x_norm_patchtokens"],
                                   vit.forward_features(x)["x_norm_patchtokens"], rtol=0, atol=0)
    assert model.metadata["trained"] == {"backbone": True, "decoder": False, "head": False, "uem": False}


def test_hparams_describe_the_paper_model():
    hp = EasyDict({"MODEL": {"BACKBONE": {"VERSION": "dinov2_vitb14_reg", "INTERM_FEATURES": [1, 4, 8, 11],
                                          "LEARNABLE_PARAMS": {"TYPE": "fpn", "OUTPUT_DIM": 256}},
                             "SEGMENTATION_HEAD": {"NAME": "LinearHead"}, "NUM_CLASSES": 19}})
    config = config_from_hparams(hp, "x")
    assert config["backbone"] == "dinov2_vitb14_reg" and config["layers"] == [1, 4, 8, 11]
    assert config["decoder_dim"] == 256 and config["num_classes"] == 19
    gmm = EasyDict({"MODEL": {"SEGMENTATION_HEAD": {"NAME": "GMMSegHead"}}})
    with pytest.raises(CheckpointError, match="GMMSegHead"):
        config_from_hparams(gmm, "x")


def test_conversion_refuses_what_it_does_not_recognise(tmp_path):
    ours = trained_tiny().state_dict()
    seg_state = to_official({k: v for k, v in ours.items() if not k.startswith("uem.")}, TO_OFFICIAL_SEGMENTOR)

    extra = dict(seg_state, **{"backbone.mystery_layer.weight": torch.zeros(3)})
    lightning_file(tmp_path / "extra.ckpt", extra, seg_hparams())
    with pytest.raises(CheckpointError, match="unrecognised key 'backbone.mystery_layer.weight'"):
        convert("uem-segmentor", tmp_path / "extra.ckpt", tmp_path / "o.pt", preset="tiny")

    missing = dict(seg_state)
    del missing["segmentation_head._head.bias"]
    lightning_file(tmp_path / "missing.ckpt", missing, seg_hparams())
    with pytest.raises(CheckpointError, match="missing key 'head.bias'"):
        convert("uem-segmentor", tmp_path / "missing.ckpt", tmp_path / "o.pt", preset="tiny")

    wrong = dict(seg_state, **{"segmentation_head._head.weight": torch.zeros(7, 32)})
    lightning_file(tmp_path / "wrong.ckpt", wrong, seg_hparams())
    with pytest.raises(CheckpointError, match="shape mismatch for 'head.weight'"):
        convert("uem-segmentor", tmp_path / "wrong.ckpt", tmp_path / "o.pt", preset="tiny")

    torch.save({"model": seg_state}, tmp_path / "plain.ckpt")
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        convert("uem-segmentor", tmp_path / "plain.ckpt", tmp_path / "o.pt", preset="tiny")
    assert not (tmp_path / "o.pt").exists()  # nothing written on failure


def test_convert_cli_prints_one_line_on_error(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00" * 100)
    proc = subprocess.run([sys.executable, "-m", "hypood_ros.cli", "convert", "--kind", "uem", "--input", str(bad),
                           "--out", str(tmp_path / "o.pt")], capture_output=True, text=True)
    assert proc.returncode == 1  # the file's content is the problem, not the command line
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "bad.ckpt" in proc.stderr


def official_ood_checkpoint(tmp_path, source, hparams, name="uem.ckpt"):
    """An OoD Lightning checkpoint that embeds its segmentor, as the authors' training writes it."""
    ours = source.state_dict()
    seg_state = to_official({k: v for k, v in ours.items() if not k.startswith("uem.")}, TO_OFFICIAL_SEGMENTOR)
    state = {**{"segmentor." + k: v for k, v in seg_state.items()}, **to_official(ours, TO_OFFICIAL_UEM)}
    return lightning_file(tmp_path / name, state, hparams)


@pytest.mark.slow
def test_uem_checkpoint_names_its_non_default_model_in_its_hyper_parameters(tmp_path):
    torch.manual_seed(6)
    source = build_segmentor("vits14_reg").eval()  # not the default ViT-B
    hparams = EasyDict({"MODEL": {"BACKBONE": {"NAME": "DINOv2"},
                                  "OOD_PROJECTOR": {"TYPE": "mlp", "INPUT_DIM": 384, "HIDDEN_DIM": 512,
                                                    "OUTPUT_DIM": 256, "NUM_LAYERS": 3},
                                  "OOD_HEAD": {"NAME": "LinearHead", "EMBEDDING_DIM": 256, "NUM_CLASSES": 2}}})
    path = official_ood_checkpoint(tmp_path, source, hparams)
    convert("uem", path, tmp_path / "full.pt")  # no preset
    model = load_checkpoint(tmp_path / "full.pt")
    assert model.config["backbone"] == "dinov2_vits14_reg" and model.backbone.num_register_tokens == 4
    x = torch.randn(1, 3, 28, 42)
    got, want = outputs(model, x), outputs(source, x)
    for key in ("seg_logits", "embedding", "uem_logits"):
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)


def test_uem_checkpoint_segmentor_section_is_read_and_preset_overrides_it(tmp_path):
    source = trained_tiny()
    # A segmentor section naming the 12-block hub ViT-S: it is what gets built, so the 4-block weights are refused.
    path = official_ood_checkpoint(tmp_path, source, seg_hparams())
    with pytest.raises(CheckpointError, match="missing key 'backbone.blocks.4"):
        convert("uem", path, tmp_path / "o.pt")
    convert("uem", path, tmp_path / "o.pt", preset="tiny")  # --preset overrides the hyper-parameters
    x = torch.randn(1, 3, 42, 42)
    torch.testing.assert_close(outputs(load_checkpoint(tmp_path / "o.pt"), x)["uem_logits"],
                               outputs(source, x)["uem_logits"], rtol=0, atol=0)


@pytest.mark.parametrize("hparams", [{}, EasyDict({"MODEL": {"OOD_HEAD": {"NAME": "LinearHead"}}}),
                                     EasyDict({"MODEL": {"OOD_PROJECTOR": {"INPUT_DIM": 100}}})])
def test_uem_checkpoint_without_a_model_description_asks_for_preset(tmp_path, hparams):
    path = official_ood_checkpoint(tmp_path, trained_tiny(), hparams)
    with pytest.raises(CheckpointError, match="pass --preset"):
        convert("uem", path, tmp_path / "o.pt")
    assert not (tmp_path / "o.pt").exists()


def test_segmentor_checkpoint_without_backbone_asks_for_preset(tmp_path):
    ours = trained_tiny().state_dict()
    seg_state = to_official({k: v for k, v in ours.items() if not k.startswith("uem.")}, TO_OFFICIAL_SEGMENTOR)
    path = lightning_file(tmp_path / "seg.ckpt", seg_state, {})
    with pytest.raises(CheckpointError, match=r"MODEL.BACKBONE.VERSION.*pass --preset"):
        convert("uem-segmentor", path, tmp_path / "o.pt")


def test_convert_cli_names_preset_in_one_line(tmp_path):
    path = official_ood_checkpoint(tmp_path, trained_tiny(), {})
    proc = subprocess.run([sys.executable, "-m", "hypood_ros.cli", "convert", "--kind", "uem", "--input", str(path),
                           "--out", str(tmp_path / "o.pt")], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # found in the file's content: a run-time error
    assert len(proc.stderr.strip().splitlines()) == 1 and "--preset" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "hypood_ros.cli", "convert", "--kind", "uem", "--input", str(path),
                           "--preset", "tiny", "--out", str(tmp_path / "o.pt")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o.pt").is_file()
