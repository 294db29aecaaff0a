"""Official checkpoints -> this project's checkpoint format.

Sources (layouts in docs/CHECKPOINTS.md):
- `dinov2`: an official DINOv2 hub checkpoint (flat state dict of the ViT). Only the backbone is
  pretrained; decoder, head and UEM start untrained (the starting point of stage-1 training).
- `uem-segmentor`: the UEM authors' Lightning checkpoint of the segmentor (backbone + FPN + linear head).
- `uem`: the UEM authors' Lightning checkpoint of the OoD model (frozen segmentor + projector + 2-class head).

Everything is read with the safe unpickler (`weights_only=True`). Lightning checkpoints carry their
configuration in dict subclasses (EasyDict, AttributeDict); those names are mapped to OrderedDict, so no
foreign code is imported or run.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Tuple

import torch

from hypood_ros.errors import CheckpointError
from hypood_ros.model.checkpoint import check_state_dict, read_torch_file, save_checkpoint
from hypood_ros.model.segmentor import PRESETS, Segmentor, preset_config

_CONFIG_CONTAINERS = [
    "easydict.EasyDict",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.pytorch.utilities.parsing.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
]


def read_lightning_checkpoint(path: str | os.PathLike) -> dict:
    # Rebuilt as OrderedDicts: plain data, and a type the safe unpickler already trusts.
    with torch.serialization.safe_globals([(OrderedDict, name) for name in _CONFIG_CONTAINERS]):
        payload = read_torch_file(path)
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), Mapping):
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no 'state_dict' entry)")
    return payload


# Official prefix -> project prefix. Order matters: longer, more specific prefixes first.
SEGMENTOR_PREFIXES: Tuple[Tuple[str, str], ...] = (
    ("backbone.dinov2.", "backbone."),
    ("backbone.learnable_layers.dino_mlp._layers.", "decoder.dino_mlp.layers."),
    ("backbone.learnable_layers.", "decoder."),
    ("segmentation_head._head.", "head."),
)
UEM_PREFIXES: Tuple[Tuple[str, str], ...] = tuple(
    ("segmentor." + src, dst) for src, dst in SEGMENTOR_PREFIXES
) + (
    ("ood_projector._layers.", "uem.projector.layers."),
    ("ood_head._head.", "uem.classifier."),
)


def map_keys(state_dict: Mapping[str, torch.Tensor], prefixes: Iterable[Tuple[str, str]], source: str,
             ignore: Tuple[str, ...] = ()) -> Dict[str, torch.Tensor]:
    """Rename by prefix; a key that matches no known prefix is an error naming that key."""
    prefixes = tuple(prefixes)
    out = {}
    for key, value in state_dict.items():
        if key.startswith(ignore):
            continue
        for src, dst in prefixes:
            if key.startswith(src):
                out[dst + key[len(src):]] = value
                break
        else:
            raise CheckpointError(f"{source}: unrecognised key {key!r} (not part of a known UEM/DINOv2 layout)")
    return out


def _get(cfg: Mapping, *path, default=None):
    for name in path:
        if not isinstance(cfg, Mapping) or name not in cfg:
            return default
        cfg = cfg[name]
    return cfg


def _needs_preset(source: str, what: str) -> CheckpointError:
    return CheckpointError(f"{source}: {what}; pass --preset (one of: {', '.join(sorted(PRESETS))})")


def config_from_hparams(hparams: Mapping, source: str, base: Optional[dict] = None) -> dict:
    """A Segmentor config from the official YAML-derived hyper-parameters (discriminative models only).

    `base` (an explicit preset) wins over the hyper-parameters; without it the backbone must be named in
    MODEL.BACKBONE.VERSION, otherwise the conversion stops and asks for --preset.
    """
    model = _get(hparams, "MODEL", default={})
    backbone = _get(model, "BACKBONE", "VERSION")
    decoder = _get(model, "BACKBONE", "LEARNABLE_PARAMS", "TYPE")
    head = _get(model, "SEGMENTATION_HEAD", "NAME")
    if decoder is not None and str(decoder).lower() != "fpn":
        raise CheckpointError(f"{source}: decoder type {decoder!r} is not supported (only the FPN decoder is)")
    if head is not None and head != "LinearHead":
        raise CheckpointError(f"{source}: segmentation head {head!r} is not supported "
                              "(only LinearHead; the GMM head is not)")
    if base is not None:
        return dict(base)  # an explicit preset wins; the checks above still apply
    if not backbone:
        raise _needs_preset(source, "its hyper-parameters do not name the backbone (MODEL.BACKBONE.VERSION)")
    config = preset_config("vitb14_reg")
    config["backbone"] = str(backbone)
    config["backbone_overrides"] = {}
    layers = _get(model, "BACKBONE", "INTERM_FEATURES")
    if layers:
        config["layers"] = [int(i) for i in layers]
    out_dim = _get(model, "BACKBONE", "LEARNABLE_PARAMS", "OUTPUT_DIM")
    if out_dim:
        config["decoder_dim"] = int(out_dim)
    classes = _get(model, "NUM_CLASSES")
    if classes:
        config["num_classes"] = int(classes)
    return config


#: Backbone width -> hub model: the UEM authors' OoD configs set MODEL.OOD_PROJECTOR.INPUT_DIM to the width of
#: the segmentor's backbone, from a table of the register variants only.
OOD_INPUT_DIM_BACKBONES = {384: "dinov2_vits14_reg", 768: "dinov2_vitb14_reg", 1024: "dinov2_vitl14_reg",
                           1536: "dinov2_vitg14_reg"}


def uem_config_from_hparams(hparams: Mapping, source: str) -> dict:
    """The segmentor config of an OoD checkpoint that embeds its segmentor, from its own hyper-parameters.

    MODEL.BACKBONE.VERSION (a segmentor section) is read as for a segmentor checkpoint; otherwise the
    projector's input width MODEL.OOD_PROJECTOR.INPUT_DIM names the backbone. Anything else: --preset.
    """
    if _get(hparams, "MODEL", "BACKBONE", "VERSION"):
        return config_from_hparams(hparams, source)
    width = _get(hparams, "MODEL", "OOD_PROJECTOR", "INPUT_DIM")
    if width is None:
        raise _needs_preset(source, "its hyper-parameters name neither the backbone (MODEL.BACKBONE.VERSION) "
                                    "nor its width (MODEL.OOD_PROJECTOR.INPUT_DIM)")
    try:
        backbone = OOD_INPUT_DIM_BACKBONES[int(width)]
    except (KeyError, TypeError, ValueError):
        raise _needs_preset(source, "no DINOv2 backbone has the width "
                                    f"MODEL.OOD_PROJECTOR.INPUT_DIM = {width!r}") from None
    return config_from_hparams({"MODEL": {"BACKBONE": {"VERSION": backbone}}}, source)


def _uem_config_from_state(state: Mapping[str, torch.Tensor], config: dict) -> dict:
    """Projector sizes follow from the weights: `uem.projector.layers.{0,2,..}.weight`."""
    linear = sorted(
        (int(k.split(".")[3]), v.shape) for k, v in state.items()
        if k.startswith("uem.projector.layers.") and k.endswith(".weight")
    )
    if linear:
        config = dict(config, uem_hidden=int(linear[0][1][0]), uem_dim=int(linear[-1][1][0]), uem_layers=len(linear))
    return config


def _build(config: dict, source: str) -> Segmentor:
    try:
        return Segmentor(**config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: cannot build the model it describes: {exc}") from None


def _load_partial(model: Segmentor, state: Mapping[str, torch.Tensor], prefix: str, source: str) -> None:
    """Strictly load the part of the model under `prefix` (names the first missing/extra/mismatched key)."""
    part = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    missing = [k for k in part if k not in state]
    if missing:
        raise CheckpointError(f"{source}: missing key {missing[0]!r} ({len(missing)} missing in all)")
    for key in part:
        if tuple(state[key].shape) != tuple(part[key].shape):
            raise CheckpointError(f"{source}: shape mismatch for {key!r}: checkpoint {tuple(state[key].shape)}, "
                                  f"model {tuple(part[key].shape)}")
    model.load_state_dict({**model.state_dict(), **{k: state[k] for k in part}}, strict=True)


def convert_dinov2(path, preset: str) -> Segmentor:
    """Backbone weights from an official hub checkpoint; the rest keeps its fresh initialization."""
    state = read_torch_file(path)
    if not isinstance(state, Mapping) or "pos_embed" not in state:
        raise CheckpointError(f"{path}: not an official DINOv2 checkpoint (no 'pos_embed' key)")
    model = _build(preset_config(preset), str(path))
    expected = model.backbone.state_dict()
    extra = [k for k in state if k not in expected]
    if extra:
        raise CheckpointError(f"{path}: unrecognised key {extra[0]!r} for backbone {model.config['backbone']}")
    _load_partial(model, {"backbone." + k: v for k, v in state.items()}, "backbone.", str(path))
    return model


def convert_uem_segmentor(path, preset: Optional[str] = None) -> Segmentor:
    payload = read_lightning_checkpoint(path)
    state = map_keys(payload["state_dict"], SEGMENTOR_PREFIXES, str(path))
    base = preset_config(preset) if preset else None
    config = config_from_hparams(payload.get("hyper_parameters") or {}, str(path), base)
    model = _build(config, str(path))
    for prefix in ("backbone.", "decoder.", "head."):
        _load_partial(model, state, prefix, str(path))
    extra = [k for k in state if not k.startswith(("backbone.", "decoder.", "head."))]
    if extra:
        raise CheckpointError(f"{path}: unexpected key {extra[0]!r}")
    return model


def convert_uem(path, segmentor_path=None, preset: Optional[str] = None) -> Segmentor:
    """The OoD checkpoint contains its segmentor; `segmentor_path` is only needed if it does not."""
    payload = read_lightning_checkpoint(path)
    raw = payload["state_dict"]
    has_segmentor = any(k.startswith("segmentor.") for k in raw)
    state = map_keys(raw, UEM_PREFIXES, str(path))
    if has_segmentor:
        # --preset wins; otherwise the checkpoint's own hyper-parameters name the backbone. The UEM sizes
        # follow from its weights.
        hparams = payload.get("hyper_parameters") or {}
        config = preset_config(preset) if preset else uem_config_from_hparams(hparams, str(path))
        model = _build(_uem_config_from_state(state, config), str(path))
    else:
        if segmentor_path is None:
            raise CheckpointError(f"{path}: holds only the UEM; pass the segmentor checkpoint with --segmentor")
        seg = convert_uem_segmentor(segmentor_path, preset)
        model = _build(_uem_config_from_state(state, seg.config), str(path))
        state = {**{k: v for k, v in seg.state_dict().items() if not k.startswith("uem.")}, **state}
    check_state_dict(model, state, str(path))
    model.load_state_dict(state, strict=True)
    return model


KINDS = ("dinov2", "uem-segmentor", "uem")


def convert(kind: str, input_path, out_path, preset: Optional[str] = None, segmentor_path=None) -> Path:
    if kind == "dinov2":
        if not preset:
            raise CheckpointError("--preset is required for a DINOv2 backbone checkpoint "
                                  f"(one of: {', '.join(sorted(PRESETS))})")
        model = convert_dinov2(input_path, preset)
        trained = {"backbone": True, "decoder": False, "head": False, "uem": False}
    elif kind == "uem-segmentor":
        model = convert_uem_segmentor(input_path, preset)
        trained = {"backbone": True, "decoder": True, "head": True, "uem": False}
    elif kind == "uem":
        model = convert_uem(input_path, segmentor_path, preset)
        trained = {"backbone": True, "decoder": True, "head": True, "uem": True}
    else:
        raise CheckpointError(f"unknown checkpoint kind {kind!r}; known: {', '.join(KINDS)}")
    metadata = {"converted_from": os.path.basename(str(input_path)), "kind": kind, "trained": trained}
    return save_checkpoint(model.eval(), out_path, metadata=metadata)
