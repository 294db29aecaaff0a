"""hypood_ros: out-of-distribution obstacle segmentation for ROS 2 (ament_python package).

The same file serves `colcon build` on a ROS install and `pip install .` on machines without ROS.
Console scripts: pip (through a wheel) puts them in the environment's bin. `setup.py install|develop`,
which colcon runs, puts them in lib/hypood_ros (setup.cfg), where `ros2 run hypood_ros hypood_node` finds
them but the shell does not; so everywhere but in a wheel the launcher scripts/hypood goes to <prefix>/bin
too, which colcon's setup.bash puts on PATH. In a wheel it would collide with the `hypood` console script.
"""
import sys
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "hypood_ros"
WHEEL = any(command in sys.argv[1:] for command in ("bdist_wheel", "editable_wheel"))

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={f"{PACKAGE}.kernels": ["*.cu", "*.h", "*.cpp"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
    ] + ([] if WHEEL else [("bin", ["scripts/hypood"])]),
    python_requires=">=3.10",
    install_requires=["setuptools", "numpy", "PyYAML"],
    extras_require={
        # Offline pipeline and the torch backend (robots usually get torch/opencv from their platform).
        "ml": ["torch>=2.1", "opencv-python-headless", "tqdm", "safetensors"],
        "onnx": ["onnx", "onnxruntime"],
        "bags": ["rosbags"],
        "kernel": ["cuda-python", "nvidia-cuda-nvrtc"],
    },
    zip_safe=True,
    maintainer="hypood_ros maintainers",
    maintainer_email="hypood-ros@example.org",
    description="DINOv2 + FPN + UEM out-of-distribution obstacle segmentation node for ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "hypood = hypood_ros.cli:main",
            "hypood_node = hypood_ros.node.hypood_node:main",
        ],
    },
)
