"""Regenerate rosdep_keys.yaml: which ROS distributions and platforms resolve each dependency key.

    python tests/data/extract_rosdep_keys.py --rosdistro /path/to/rosdistro-checkout [--commit SHA --date ISO]

Runs the real `rosdep resolve` (pip install rosdep) offline against a rosdistro checkout: rosdep/base.yaml,
rosdep/python.yaml and humble/jazzy/kilted distribution.yaml, for each distribution's release platforms.
The keys are package.xml's dependencies plus CANDIDATES (keys the package might need, and known misses),
so a key added to package.xml must be added here by rerunning the script. Keeps names only.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DISTROS = ("humble", "jazzy", "kilted")
CANDIDATES = ("ament_python", "ament_cmake_python", "builtin_interfaces", "geometry_msgs", "nav_msgs",
              "visualization_msgs", "tf2_ros", "tf2_ros_py", "sensor_msgs_py", "python3-torch", "python3-onnx",
              "python3-onnxruntime-pip", "python3-scipy", "python3-sklearn", "python3-safetensors-pip")
DEPENDS = ("depend", "build_depend", "buildtool_depend", "build_export_depend", "buildtool_export_depend",
           "exec_depend", "test_depend", "doc_depend")


def package_keys(package_xml: Path):
    root = ET.parse(package_xml).getroot()
    return sorted({e.text.strip() for tag in DEPENDS for e in root.iter(tag)})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rosdistro", type=Path, required=True, help="a checkout (or export) of ros/rosdistro")
    parser.add_argument("--commit", default="unknown")
    parser.add_argument("--date", default="unknown")
    parser.add_argument("--rosdep", default="rosdep")
    parser.add_argument("--out", type=Path, default=HERE / "rosdep_keys.yaml")
    args = parser.parse_args()
    root = args.rosdistro.resolve()
    work = Path(tempfile.mkdtemp(prefix="rosdep_keys_"))
    index = {"type": "index", "version": 4, "distributions": {
        d: {"distribution": [f"file://{root}/{d}/distribution.yaml"], "distribution_status": "active",
            "distribution_type": "ros2", "python_version": 3} for d in DISTROS}}
    (work / "index.yaml").write_text(yaml.safe_dump(index))
    (work / "sources.list.d").mkdir()
    (work / "sources.list.d" / "20-default.list").write_text(
        "".join(f"yaml file://{root}/rosdep/{name}.yaml\n" for name in ("base", "python")))
    env = dict(os.environ, ROSDISTRO_INDEX_URL=f"file://{work}/index.yaml",
               ROSDEP_SOURCE_PATH=str(work / "sources.list.d"), ROS_HOME=str(work / "home"))
    subprocess.run([args.rosdep, "update"], env=env, check=True, capture_output=True)
    platforms = {}
    for distro in DISTROS:
        data = yaml.safe_load((root / distro / "distribution.yaml").read_text())
        platforms[distro] = [f"{os_name}:{code}" for os_name, codes in data["release_platforms"].items()
                             for code in codes]
    keys = sorted(set(package_keys(HERE.parents[1] / "package.xml")) | set(CANDIDATES))

    def resolves(job):
        key, distro, platform = job
        proc = subprocess.run([args.rosdep, "resolve", key, "--rosdistro", distro, "--os", platform], env=env,
                              capture_output=True, text=True)
        return job, proc.returncode == 0

    jobs = [(k, d, p) for k in keys for d in DISTROS for p in platforms[d]]
    with ThreadPoolExecutor(4) as pool:
        ok = dict(pool.map(resolves, jobs))
    table = {k: {d: [p for p in platforms[d] if ok[(k, d, p)]] for d in DISTROS if any(ok[(k, d, p)]
                                                                                       for p in platforms[d])}
             for k in keys}
    header = ("# Which ROS distributions and platforms resolve each rosdep key (key names only, nothing else "
              "copied).\n"
              f"# Source: https://github.com/ros/rosdistro commit {args.commit} ({args.date}): rosdep/base.yaml,\n"
              f"# rosdep/python.yaml, {{humble,jazzy,kilted}}/distribution.yaml, resolved with `rosdep resolve`.\n"
              f"# Regenerate with tests/data/extract_rosdep_keys.py. A key with {{}} resolves nowhere.\n")
    body = {"source": {"repository": "https://github.com/ros/rosdistro", "commit": args.commit, "date": args.date},
            "platforms": platforms, "keys": table}
    args.out.write_text(header + yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=120))
    print(f"wrote {args.out}: {len(keys)} keys")


if __name__ == "__main__":
    main()
