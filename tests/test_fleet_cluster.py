"""`hypood fleet --address`: a Ray cluster of two nodes on this machine (a head and a second node, each its own
processes, started by Ray's own cluster utilities), and the work spread over both."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="ray (the fleet extra) not installed")

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "demo" / "model.pt"


@pytest.mark.slow
def test_address_spreads_bags_over_two_nodes(tmp_path):
    from ray.cluster_utils import Cluster

    from hypood_ros.synthetic import writers

    for i in range(2):
        writers.write_bag(tmp_path / f"drive{i}", writers.drive(40 + i, 3, size=(96, 192)))
    params = tmp_path / "params.yaml"
    text = (REPO / "models" / "demo" / "params.yaml").read_text()
    params.write_text(text.replace("input_height: 280", "input_height: 112").replace("input_width: 560",
                                                                                      "input_width: 224"))
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        cmd = [sys.executable, "-m", "hypood_ros.cli", "fleet", str(tmp_path / "drive0"), str(tmp_path / "drive1"),
               "--model", str(MODEL), "--params-file", str(params), "--out", str(tmp_path / "out"),
               "--address", cluster.address, "--workers", "2"]
        done = subprocess.run(cmd, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                              text=True, timeout=300)
    finally:
        cluster.shutdown()
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["run"]["nodes"] == 2 and summary["run"]["workers"] == 2
    nodes = {w["node_id"] for bag in summary["bags"] for w in bag["workers"]}
    assert len(nodes) == 2  # one bag on each node: one CPU each, one worker per CPU
    assert summary["total"]["frames"] == 6
