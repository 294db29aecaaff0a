"""The training losses against the UEM authors' formulas, written out here: logits and UEM logits upsampled to
the label size, then the LLR, then BCE on the non-void pixels; cross-entropy on upsampled logits."""
import pytest
import torch
import torch.nn.functional as F

from hypood_ros.model import build_segmentor
from hypood_ros.training.losses import llr_loss, segmentation_loss

OOD, IGNORE = 254, 255


def official_llr_loss(seg_logits, uem_logits, labels):
    size = labels.shape[-2:]
    seg = F.interpolate(seg_logits, size=size, mode="bilinear", align_corners=False)
    ood = F.interpolate(uem_logits, size=size, mode="bilinear", align_corners=False)
    target = (labels == OOD).long()
    target[labels == IGNORE] = IGNORE
    score = ood[:, 1] - seg.max(dim=1)[0] - ood[:, 0]
    mask = target != IGNORE
    return F.binary_cross_entropy_with_logits(score[mask], target[mask].float())


def labels_for(size, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 19, (2, *size), generator=g)
    labels[:, 10:25, 20:40] = OOD
    labels[:, :3] = IGNORE
    return labels


@pytest.mark.parametrize("size", [(61, 93), (16, 24), (11, 17)])  # larger, equal to, smaller than the logits
def test_llr_loss_value_and_gradients_equal_the_official_formula(size):
    g = torch.Generator().manual_seed(1)
    seg = torch.randn(2, 19, 16, 24, generator=g).requires_grad_()
    emb = torch.randn(2, 8, 16, 24, generator=g)
    uem = torch.randn(2, 2, 4, 6, generator=g).requires_grad_()
    labels = labels_for(size)
    if size[0] < 25:
        labels[:, 2:6, 3:9] = OOD
    model = build_segmentor("tiny")
    ours = llr_loss({"seg_logits": seg, "embedding": emb, "uem_logits": uem}, model.head_params(), labels, OOD, IGNORE)
    want = official_llr_loss(seg, uem, labels)
    torch.testing.assert_close(ours, want, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(ours, (seg, uem))
    want_grads = torch.autograd.grad(want, (seg, uem))
    for got, expected in zip(grads, want_grads):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        assert got.abs().sum() > 0


def test_llr_loss_gradients_reach_the_uem_parameters_as_officially():
    torch.manual_seed(2)
    model = build_segmentor("tiny").train()
    x = torch.randn(2, 3, 42, 56)
    labels = labels_for((45, 61), seed=3)
    params = list(model.uem.parameters())
    out = model(x)
    ours = llr_loss(out, model.head_params(), labels, OOD, IGNORE)
    ours_grads = torch.autograd.grad(ours, params)
    out = model(x)
    want = official_llr_loss(out["seg_logits"], out["uem_logits"], labels)
    want_grads = torch.autograd.grad(want, params)
    torch.testing.assert_close(ours, want, rtol=1e-5, atol=1e-5)
    for got, expected in zip(ours_grads, want_grads):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_segmentation_loss_is_cross_entropy_of_upsampled_logits():
    g = torch.Generator().manual_seed(4)
    seg = torch.randn(2, 19, 16, 24, generator=g).requires_grad_()
    labels = labels_for((61, 93))
    labels[labels == OOD] = 5
    ours = segmentation_loss({"seg_logits": seg}, labels, IGNORE)
    up = F.interpolate(seg, size=(61, 93), mode="bilinear", align_corners=False)
    want = F.cross_entropy(up, labels, ignore_index=IGNORE)
    torch.testing.assert_close(ours, want, rtol=1e-6, atol=1e-6)
