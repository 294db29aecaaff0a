"""Optional dependencies: the pip extras, what each command needs, and the message when one is missing.

The base install (numpy, PyYAML) is enough for `hypood --help`; each command names the extra it
needs. setup.py reads EXTRAS from this file (stdlib only, so it can be read without installing
anything), so the extras and the messages cannot disagree.
"""
from __future__ import annotations

import importlib.util
from typing import Dict, List, Optional

PACKAGE = "hypood_ros"

_ML = ["torch>=2.1", "opencv-python-headless", "tqdm"]
#: pip extras of the package (setup.py's extras_require).
EXTRAS: Dict[str, List[str]] = {
    "ml": _ML,  # the pipeline, the torch backend, training
    "onnx": _ML + ["onnx", "onnxruntime"],  # ONNX export and the ONNX Runtime backend
    "bags": ["rosbags"],  # reading and writing rosbag2 bags
    "replay": _ML + ["rosbags"],  # `hypood replay` (rclpy comes from the ROS 2 installation)
    "eval": _ML + ["matplotlib"],  # benchmark tables and plots
    "kernel": ["cuda-python", "nvidia-cuda-nvrtc"],  # run-time compilation of the fused CUDA kernel
    "demo": _ML + ["rosbags", "pillow"],  # `hypood demo` and `hypood generate`
    "fleet": _ML + ["rosbags", "matplotlib", "ray[data]==2.60.0", "pyarrow"],  # `hypood fleet` (Ray pinned)
}
EXTRAS["all"] = sorted({p for name, pkgs in EXTRAS.items() for p in pkgs})

#: The module each pip package provides (what `import` needs).
MODULES: Dict[str, str] = {
    "torch": "torch", "opencv-python-headless": "cv2", "tqdm": "tqdm", "onnx": "onnx", "onnxruntime": "onnxruntime",
    "rosbags": "rosbags", "matplotlib": "matplotlib", "pillow": "PIL", "cuda-python": "cuda",
    "nvidia-cuda-nvrtc": "nvidia", "ray[data]": "ray",
}

#: The extra each command needs.
COMMAND_EXTRAS: Dict[str, str] = {
    "run": "ml", "convert": "ml", "export": "onnx", "build-engine": "onnx", "replay": "replay",
    "calibrate": "ml", "fit-sml": "ml", "eval": "eval", "train": "ml", "demo": "demo", "generate": "demo",
    "fleet": "fleet",
}

#: Modules that no pip extra provides, with where they come from.
SYSTEM_MODULES = {
    "rclpy": "ROS 2's Python packages (source /opt/ros/<distro>/setup.bash)",
    "tensorrt": "TensorRT (Jetson: JetPack; desktop: pip install tensorrt)",
}


def _module_of(requirement: str) -> str:
    name = requirement.split(">")[0].split("=")[0].split("<")[0].strip()
    return MODULES.get(name, name)


def extra_modules(extra: str) -> List[str]:
    return [_module_of(r) for r in EXTRAS[extra]]


def install_hint(extra: str) -> str:
    return f"pip install '{PACKAGE}[{extra}]'"


def extra_for(module: str, command: Optional[str] = None) -> Optional[str]:
    """The extra to install for `module`: the command's own when it has it, else the smallest that does."""
    top = module.split(".")[0]
    own = COMMAND_EXTRAS.get(command or "")
    if own and top in extra_modules(own):
        return own
    having = [name for name in EXTRAS if name != "all" and top in extra_modules(name)]
    return min(having, key=lambda name: len(EXTRAS[name])) if having else None


def missing_message(module: str, command: Optional[str] = None) -> Optional[str]:
    """'hypood eval needs matplotlib, which is not installed: pip install ...'; None for unknown modules."""
    top = module.split(".")[0]
    who = f"hypood {command}" if command else "hypood"
    if top in SYSTEM_MODULES:
        return f"{who} needs {top}, which is not installed here: it comes with {SYSTEM_MODULES[top]}"
    extra = extra_for(top, command)
    if extra is None:
        return None
    return f"{who} needs {top}, which is not installed: {install_hint(extra)}"


def pip_name(module: str) -> str:
    """The pip package that provides `module` (the module's own name when it is not in MODULES)."""
    return next((pip for pip, mod in MODULES.items() if mod == module), module)


def missing(modules) -> List[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]
