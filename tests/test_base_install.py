"""A fresh virtual environment with only the base install: the command line works and names its extras.

`pip install .` without extras gives numpy and PyYAML, nothing else. `hypood --help` must work there,
and each command must say which extra it needs instead of failing with ModuleNotFoundError.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["setup.py", "setup.cfg", "package.xml", "resource", "launch", "config", "rviz", "scripts", "LICENSE",
           "hypood_ros"]


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("base-install")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:  # a copy, so pip's build files never land in the repository
        path = REPO / name
        if not path.exists():
            continue
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    made = subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], capture_output=True, text=True,
                          env=env, timeout=300)
    if made.returncode != 0 and "ensurepip" in made.stdout + made.stderr:
        pytest.skip("this Python cannot create virtual environments (install python3-venv)")
    assert made.returncode == 0, made.stderr
    python = root / "venv" / "bin" / "python"
    for args in (["--no-deps", str(src)], ["numpy", "PyYAML"]):
        proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *args], capture_output=True,
                              text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return root / "venv" / "bin", env, root


def hypood(base_venv, *args):
    bin_dir, env, root = base_venv
    return subprocess.run([str(bin_dir / "hypood"), *args], capture_output=True, text=True, env=env, cwd=root,
                          timeout=120)


@pytest.mark.slow
def test_the_environment_has_only_the_base_install(base_venv):
    bin_dir, env, _ = base_venv
    for module in ("torch", "cv2", "onnx", "matplotlib", "rosbags"):
        proc = subprocess.run([str(bin_dir / "python"), "-c", f"import {module}"], capture_output=True, env=env)
        assert proc.returncode != 0, f"{module} is installed in the base environment"


@pytest.mark.slow
def test_help_and_version_work(base_venv):
    proc = hypood(base_venv, "--help")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    for command in ("run", "convert", "export", "build-engine", "replay", "calibrate", "fit-sml", "eval", "train"):
        assert command in proc.stdout
    version = hypood(base_venv, "--version")
    assert version.returncode == 0 and version.stdout.startswith("hypood_ros ")


@pytest.mark.slow
@pytest.mark.parametrize("command,extra", [("eval", "eval"), ("run", "ml"), ("replay", "replay"),
                                           ("export", "onnx")])
def test_each_command_names_its_extra(base_venv, command, extra):
    shown = hypood(base_venv, command, "--help")
    assert shown.returncode == 0 and "Traceback" not in shown.stdout + shown.stderr
    assert f"pip install 'hypood_ros[{extra}]'" in shown.stdout
    ran = hypood(base_venv, command, "--out", "x")
    lines = ran.stderr.splitlines()
    assert ran.returncode == 1 and len(lines) == 1 and "Traceback" not in ran.stderr, ran.stderr
    assert lines[0].startswith(f"hypood: error: hypood {command} needs ") and f"hypood_ros[{extra}]" in lines[0]
