"""hypood_ros: out-of-distribution obstacle segmentation for ROS 2 (ament_python package).

The same file serves `colcon build` on a ROS install and `pip install .` on machines without ROS.
Console scripts: pip (through a wheel) puts them in the environment's bin. `setup.py install|develop`,
which colcon runs, puts them in lib/hypood_ros (setup.cfg), where `ros2 run hypood_ros hypood_node` finds
them but the shell does not; so everywhere but in a wheel the launcher scripts/hypood goes to <prefix>/bin
too, which colcon's setup.bash puts on PATH. In a wheel it would collide with the `hypood` console script.
"""
import os
import re
import runpy
import sys
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "hypood_ros"
WHEEL = any(command in sys.argv[1:] for command in ("bdist_wheel", "editable_wheel"))
HERE = os.path.dirname(os.path.abspath(__file__))
# The extras live beside the messages that name them (stdlib-only module, read without importing the package).
EXTRAS = runpy.run_path(os.path.join(HERE, PACKAGE, "cli", "extras.py"))["EXTRAS"]
with open(os.path.join(HERE, PACKAGE, "__init__.py")) as init:
    VERSION = re.search(r'^__version__ = "([^"]+)"', init.read(), re.M).group(1)  # `hypood --version` prints it

setup(
    name=PACKAGE,
    version=VERSION,
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={f"{PACKAGE}.kernels": ["*.cu", "*.h", "*.cpp"], f"{PACKAGE}.scores": ["*.cpp"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
    ] + ([] if WHEEL else [("bin", ["scripts/hypood"])]),
    python_requires=">=3.10",
    # numpy and PyYAML are all `hypood --help` and the node's parameter handling need; robots usually get
    # torch and OpenCV from their platform. Each command names its extra when it is missing.
    install_requires=["setuptools", "numpy", "PyYAML"],
    extras_require=EXTRAS,
    zip_safe=True,
    maintainer="hypood_ros maintainers",
    maintainer_email="hypood-ros@example.org",
    description="DINOv2 + FPN + UEM out-of-distribution obstacle segmentation node for ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "hypood = hypood_ros.cli:main",
            "hypood_node = hypood_ros.node.hypood_node:main",
            "hypood_lifecycle_node = hypood_ros.node.managed:main",
        ],
    },
)
