"""The DINOv2 backbone and the segmentor: official parameter layout, interpolation, intermediate layers."""
import pytest
import torch

from hypood_ros.errors import CheckpointError
from hypood_ros.model import build_dinov2, build_segmentor, load_checkpoint

# Hand-written from the official hub models: (key, shape) pairs that must exist exactly.
OFFICIAL_KEYS = {
    "dinov2_vits14": {
        "cls_token": (1, 1, 384), "pos_embed": (1, 1370, 384), "mask_token": (1, 384),
        "patch_embed.proj.weight": (384, 3, 14, 14), "patch_embed.proj.bias": (384,),
        "blocks.0.norm1.weight": (384,), "blocks.0.attn.qkv.weight": (1152, 384), "blocks.0.attn.qkv.bias": (1152,),
        "blocks.0.attn.proj.weight": (384, 384), "blocks.0.ls1.gamma": (384,), "blocks.0.norm2.bias": (384,),
        "blocks.0.mlp.fc1.weight": (1536, 384), "blocks.0.mlp.fc2.weight": (384, 1536), "blocks.11.ls2.gamma": (384,),
        "norm.weight": (384,), "norm.bias": (384,),
    },
    "dinov2_vitb14_reg": {
        "register_tokens": (1, 4, 768), "pos_embed": (1, 1370, 768), "blocks.11.attn.qkv.weight": (2304, 768),
        "blocks.11.mlp.fc1.weight": (3072, 768),
    },
    "dinov2_vitl14": {"blocks.23.mlp.fc2.weight": (1024, 4096), "pos_embed": (1, 1370, 1024)},
    "dinov2_vitg14_reg": {
        "register_tokens": (1, 4, 1536), "blocks.39.mlp.w12.weight": (8192, 1536), "blocks.39.mlp.w12.bias": (8192,),
        "blocks.39.mlp.w3.weight": (1536, 4096), "blocks.0.attn.qkv.weight": (4608, 1536),
    },
}
PARAM_COUNTS = {"dinov2_vits14": 22_056_576, "dinov2_vitb14": 86_580_480}


@pytest.mark.parametrize("name", sorted(OFFICIAL_KEYS))
def test_official_parameter_names_and_shapes(name):
    with torch.device("meta"):
        model = build_dinov2(name)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, shape in OFFICIAL_KEYS[name].items():
        assert shapes.get(key) == shape, key
    assert not any(k.startswith("blocks.0.0") for k in shapes)  # flat (unchunked) blocks, as the hub files
    if name in PARAM_COUNTS:
        assert sum(v.numel() for v in model.parameters()) == PARAM_COUNTS[name]


def test_all_hub_names_build():
    for arch in ("vits14", "vitb14", "vitl14", "vitg14"):
        for suffix in ("", "_reg"):
            with torch.device("meta"):
                model = build_dinov2(f"dinov2_{arch}{suffix}")
            assert model.num_register_tokens == (4 if suffix else 0)
    with pytest.raises(ValueError, match="unknown DINOv2"):
        build_dinov2("dinov2_vitx14")


def small_official_checkpoint(tmp_path, registers):
    """A small ViT saved as the hub files are: a flat state dict written with torch.save."""
    torch.manual_seed(1)
    name = "dinov2_vits14_reg" if registers else "dinov2_vits14"
    model = build_dinov2(name, embed_dim=48, depth=3, num_heads=3).eval()
    path = tmp_path / "hub.pth"
    torch.save(model.state_dict(), path)
    return name, model, path


@pytest.mark.parametrize("registers", [False, True])
def test_official_layout_checkpoint_loads_strictly_and_reproduces(tmp_path, registers):
    name, source, path = small_official_checkpoint(tmp_path, registers)
    x = torch.randn(2, 3, 98, 140)
    with torch.no_grad():
        expected = source.forward_features(x)
    fresh = build_dinov2(name, embed_dim=48, depth=3, num_heads=3).eval()
    fresh.load_state_dict(torch.load(path, weights_only=True), strict=True)
    with torch.no_grad():
        got = fresh.forward_features(x)
    for key in ("x_norm_clstoken", "x_norm_regtokens", "x_norm_patchtokens", "x_prenorm"):
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)
    assert got["x_norm_patchtokens"].shape == (2, 7 * 10, 48)
    assert got["x_norm_regtokens"].shape == (2, 4 if registers else 0, 48)


def test_pos_embed_interpolation_non_square():
    model = build_dinov2("dinov2_vits14", embed_dim=32, depth=1, num_heads=2).eval()
    x = torch.zeros(1, 197, 32)  # 1 + 14*14 tokens
    pe = model.interpolate_pos_encoding(x, 14 * 14, 14 * 14)
    assert pe.shape == (1, 197, 32)
    pe = model.interpolate_pos_encoding(torch.zeros(1, 1 + 4 * 9, 32), 56, 126)
    assert pe.shape == (1, 37, 32)
    torch.testing.assert_close(pe[:, 0], model.pos_embed[:, 0])  # class token position untouched
    same = model.interpolate_pos_encoding(torch.zeros(1, 1370, 32), 518, 518)
    assert same is model.pos_embed
    with pytest.raises(ValueError, match="multiple of the patch size"):
        model.forward_features(torch.zeros(1, 3, 50, 56))


def test_get_intermediate_layers_semantics():
    torch.manual_seed(0)
    model = build_dinov2("dinov2_vits14_reg", embed_dim=32, depth=4, num_heads=2).eval()
    x = torch.randn(2, 3, 42, 56)
    with torch.no_grad():
        last2 = model.get_intermediate_layers(x, n=2)
        listed = model.get_intermediate_layers(x, n=[2, 3])
        raw = model.get_intermediate_layers(x, n=[3], norm=False)
        shaped = model.get_intermediate_layers(x, n=1, reshape=True, return_class_token=True)
        feats = model.forward_features(x)
    assert len(last2) == 2 and all(t.shape == (2, 12, 32) for t in last2)
    for a, b in zip(last2, listed):
        torch.testing.assert_close(a, b)
    # The last block, normalized, is exactly forward_features' patch tokens; unnormalized, x_prenorm's.
    torch.testing.assert_close(last2[-1], feats["x_norm_patchtokens"])
    torch.testing.assert_close(raw[0], feats["x_prenorm"][:, 5:])
    (patch_map, cls), = shaped
    assert patch_map.shape == (2, 32, 3, 4)
    torch.testing.assert_close(cls, feats["x_norm_clstoken"])
    torch.testing.assert_close(patch_map.flatten(2).transpose(1, 2), feats["x_norm_patchtokens"])


def test_segmentor_outputs_and_head_params(tiny_model):
    x = torch.randn(2, 3, 56, 112)
    with torch.no_grad():
        out = tiny_model(x)
    assert out["seg_logits"].shape == (2, 19, 16, 32)
    assert out["embedding"].shape == (2, 32, 16, 32)
    assert out["uem_logits"].shape == (2, 2, 4, 8)
    head = tiny_model.head_params()
    # seg_logits is exactly the linear head applied to the embedding.
    manual = torch.einsum("kd,bdhw->bkhw", tiny_model.head.weight, out["embedding"]) + head.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(out["seg_logits"], manual, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(head.weight_norm, tiny_model.head.weight.norm(dim=1))


def test_vitb_preset_matches_paper_configuration():
    with torch.device("meta"):
        model = build_segmentor("vitb14_reg")
    assert model.config["backbone"] == "dinov2_vitb14_reg" and model.layers == [1, 4, 8, 11]
    assert model.decoder.output_dim == 256 and model.head.weight.shape == (19, 256)
    projector = [m for m in model.uem.projector.layers if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in projector] == [(768, 512), (512, 512), (512, 256)]
    assert model.uem.classifier.weight.shape == (2, 256)


def test_checkpoint_roundtrip(tiny_model, tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint)
    x = torch.randn(1, 3, 42, 70)
    with torch.no_grad():
        a, b = tiny_model(x), loaded(x)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_bad_checkpoints_give_one_clear_error(tmp_path, tiny_model, tiny_checkpoint):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(garbage)
    hub = tmp_path / "hub.pth"
    torch.save(build_dinov2("dinov2_vits14", embed_dim=32, depth=1, num_heads=2).state_dict(), hub)
    with pytest.raises(CheckpointError, match="convert it first"):
        load_checkpoint(hub)

    payload = torch.load(tiny_checkpoint, weights_only=True)
    del payload["state_dict"]["head.bias"]
    torch.save(payload, tmp_path / "missing_key.pt")
    with pytest.raises(CheckpointError, match="missing key 'head.bias'"):
        load_checkpoint(tmp_path / "missing_key.pt")
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["state_dict"]["head.weight"] = torch.zeros(5, 5)
    torch.save(payload, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=r"shape mismatch for 'head.weight'.*\(5, 5\).*\(19, 32\)"):
        load_checkpoint(tmp_path / "shape.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"format": "hypood_ros.segmentor", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="safe loader"):
        load_checkpoint(tmp_path / "evil.pt")
