"""Runtime backends (PyTorch, ONNX Runtime, TensorRT) behind one interface."""
from hypood_ros.runtimes.base import INPUT_NAME, OUTPUT_NAMES, Backend, HeadParams

__all__ = ["Backend", "HeadParams", "INPUT_NAME", "OUTPUT_NAMES"]
