"""From the OOD mask to obstacles on the road: camera model and pose, corridor region of interest,
ground-plane obstacles, local grid.

ROS-free and vectorized; the node's glue (hypood_ros/node/obstacles.py) turns the results into messages.
"""
from hypood_ros.geometry.camera import DISTORTION_MODELS, CameraError, CameraModel, CameraPose
from hypood_ros.geometry.corridor import corridor_mask
from hypood_ros.geometry.grid import GridConfig, LocalGrid, to_frame
from hypood_ros.geometry.obstacles import Obstacles, find_obstacles, ground_points

__all__ = ["DISTORTION_MODELS", "CameraError", "CameraModel", "CameraPose", "GridConfig", "LocalGrid", "Obstacles",
           "corridor_mask", "find_obstacles", "ground_points", "to_frame"]
