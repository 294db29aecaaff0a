"""hypood_ros: out-of-distribution obstacle segmentation for vehicle cameras.

Everything in this package except `hypood_ros.node` is importable without ROS.
"""

__version__ = "0.1.0"
