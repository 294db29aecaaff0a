"""ROS packaging: rosdep keys, the license, and what `colcon build` / pip install put where."""
import configparser
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEPENDS = ("depend", "build_depend", "buildtool_depend", "build_export_depend", "buildtool_export_depend",
           "exec_depend", "test_depend", "doc_depend")
#: The platform each distribution is used on here (REP 2000 tier 1).
TIER1 = {"humble": "ubuntu:jammy", "jazzy": "ubuntu:noble", "kilted": "ubuntu:noble"}


def package_xml():
    return ET.parse(REPO / "package.xml").getroot()


def rosdep_keys():
    return yaml.safe_load((REPO / "tests" / "data" / "rosdep_keys.yaml").read_text())


def test_key_list_names_its_source():
    data = rosdep_keys()
    header = (REPO / "tests" / "data" / "rosdep_keys.yaml").read_text().splitlines()[:3]
    assert any("github.com/ros/rosdistro" in line and data["source"]["commit"] in line for line in header)
    assert len(data["source"]["commit"]) == 40 and data["source"]["date"][:2] == "20"
    assert set(data["platforms"]) == set(TIER1)
    # The list records misses too, so the check below can fail: these are the keys that broke rosdep.
    assert data["keys"]["ament_python"] == {} and data["keys"]["python3-onnx"] == {}


def test_every_dependency_resolves_with_rosdep_on_humble_jazzy_and_kilted():
    root, keys = package_xml(), rosdep_keys()["keys"]
    deps = [(tag, e.text.strip()) for tag in DEPENDS for e in root.iter(tag)]
    assert deps, "package.xml lists no dependencies"
    for tag, key in deps:
        assert key in keys, f"<{tag}>{key}</{tag}> is not in tests/data/rosdep_keys.yaml: rerun its extract script"
        for distro, platform in TIER1.items():
            assert platform in keys[key].get(distro, []), f"rosdep cannot resolve {key} on {distro} ({platform})"
    assert root.find("export/build_type").text == "ament_python"  # the build type, never a dependency key
    assert {"rclpy", "sensor_msgs", "diagnostic_msgs", "rosgraph_msgs", "launch_ros", "rviz2"} <= {k for _, k in deps}


def test_pip_only_dependencies_are_documented():
    page = (REPO / "docs" / "INSTALL.md").read_text()
    keys = {e.text for e in package_xml().iter("exec_depend")}
    assert "python3-torch" not in keys  # Ubuntu's package is CPU-only and old; PyTorch comes from pip
    for package in ("torch", "onnx", "onnxruntime"):
        assert "pip install" in page and package in page.split("## Installing on a robot")[1], package


def test_license_matches_package_xml_and_setup_py():
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert package_xml().findtext("license") == "Apache-2.0"
    assert 'license="Apache-2.0"' in (REPO / "setup.py").read_text()


def test_colcon_layout():
    """setup.cfg sends console scripts to lib/hypood_ros (`ros2 run`); the marker and the workspace link exist."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/hypood_ros"
    assert cfg["develop"]["script_dir"] == "$base/lib/hypood_ros"
    assert (REPO / "resource" / "hypood_ros").is_file()
    link = REPO / "ros2_ws" / "src" / "hypood_ros"
    assert link.is_symlink() and link.resolve() == REPO


def setup_arguments(*argv):
    """What setup.py passes to setup() when run with `argv` (as colcon or a wheel build runs it)."""
    code = ("import sys, runpy, setuptools, json\n"
            "captured = {}\n"
            "setuptools.setup = lambda **kw: captured.update(kw)\n"
            f"sys.argv = ['setup.py', *{list(argv)!r}]\n"
            "runpy.run_path('setup.py', run_name='__main__')\n"
            "print(json.dumps({'data_files': captured['data_files'], 'entry_points': captured['entry_points']}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return yaml.safe_load(out)


def test_setup_installs_the_launcher_except_in_wheels():
    # colcon build, colcon build --symlink-install, colcon's package probe
    for argv in (["install", "--prefix", "x"], ["develop"], ["--dry-run"]):
        args = setup_arguments(*argv)
        assert ["bin", ["scripts/hypood"]] in args["data_files"], argv
        assert "config/fastdds_large_frames.xml" in dict(args["data_files"])["share/hypood_ros/config"]
    wheel = setup_arguments("bdist_wheel")
    assert all(dest != "bin" for dest, _ in wheel["data_files"])
    assert set(wheel["entry_points"]["console_scripts"]) == {"hypood = hypood_ros.cli:main",
                                                             "hypood_node = hypood_ros.node.hypood_node:main",
                                                             "hypood_lifecycle_node = hypood_ros.node.managed:main"}


def test_launcher_runs_the_cli_with_the_python_beside_it(tmp_path):
    launcher = REPO / "scripts" / "hypood"
    assert os.access(launcher, os.X_OK)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "hypood").symlink_to(launcher)  # linked, as colcon's --symlink-install lays it out
    used = tmp_path / "used"
    python = bin_dir / "python3"  # a virtual environment's interpreter, which notes that it ran
    python.write_text(f'#!/bin/sh\necho "$@" > {used}\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    env = dict(os.environ, PYTHONPATH=str(REPO), PATH="/usr/bin:/bin")
    proc = subprocess.run([str(bin_dir / "hypood"), "--help"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "usage: hypood" in proc.stdout, proc.stderr
    assert used.read_text().split() == ["-m", "hypood_ros.cli", "--help"]
