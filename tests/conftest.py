"""Shared fixtures: small real models and checkpoints, created once per test session."""
from __future__ import annotations

import pytest
import torch

from hypood_ros.model import build_segmentor, save_checkpoint


@pytest.fixture(scope="session")
def tiny_model():
    torch.manual_seed(0)
    return build_segmentor("tiny").eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(tiny_model, path)
    return path
