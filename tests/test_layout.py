"""Rules of the code layout that keep the package usable off-robot."""
import subprocess
import sys

CORE = ["hypood_ros.model", "hypood_ros.scores", "hypood_ros.kernels", "hypood_ros.runtimes", "hypood_ros.pipeline",
        "hypood_ros.conversion", "hypood_ros.images", "hypood_ros.bags", "hypood_ros.calibration",
        "hypood_ros.evaluation.evaluate", "hypood_ros.training.trainer", "hypood_ros.geometry"]


def test_core_imports_without_ros():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in CORE)
            + "leaked = sorted(m for m in sys.modules\n"
            + "                if m.split('.')[0] in {'rclpy', 'sensor_msgs', 'rcl_interfaces'})\n"
            + "assert not leaked, leaked\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_cli_lists_every_command():
    proc = subprocess.run([sys.executable, "-m", "hypood_ros.cli", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    for command in ("run", "convert", "export", "build-engine", "replay", "calibrate", "fit-sml", "eval", "train"):
        assert command in proc.stdout, command


def test_sources_parse_as_python_3_10():
    """Jetson runs Humble on Python 3.10: no newer syntax anywhere in the package, launch files or tools."""
    import ast
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    files = [p for d in ("hypood_ros", "launch", "benchmarks", "tests") for p in (repo / d).rglob("*.py")]
    assert len(files) > 40
    for path in files:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 10))
