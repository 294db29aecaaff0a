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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`hypood` command lines in forked children of one warm interpreter (cli_harness.py), per test module."""
    from cli_harness import CliServer

    srv = CliServer(tmp_path_factory.mktemp("cli-output"))
    yield srv
    srv.close()
