"""The node's topic names, once (relative, so namespaces and remaps compose). ROS-free.

The node, replay, the demo and the obstacle glue read them from here; the topic table in docs/NODE.md
documents the same names.
"""
from __future__ import annotations

import re
from typing import Dict, Tuple

from hypood_ros.errors import ConfigError

IMAGE = "image"  # sensor_msgs/Image in
IMAGE_COMPRESSED = "image/compressed"  # sensor_msgs/CompressedImage in (input_type: compressed)
CAMERA_INFO = "camera_info"  # sensor_msgs/CameraInfo in, for the obstacle outputs
ODOM = "odom"  # nav_msgs/Odometry in, optional, keeps the grid in the odometry frame
CLASSES = "classes"  # std_msgs/String (JSON) out, latched
OOD_LABEL = "ood_label"  # sensor_msgs/Image mono8 ground truth in generated bags: 0 in-distribution, 1 OOD, 255 void

#: Image outputs by pipeline output name.
IMAGE_OUTPUTS: Dict[str, str] = {
    "labels": "semantic/labels",
    "color": "semantic/color",
    "score": "ood/score",
    "mask": "ood/mask",
    "overlay": "ood/overlay",
}
#: Obstacle outputs by name (PointCloud2, OccupancyGrid, MarkerArray).
OBSTACLE_OUTPUTS: Dict[str, str] = {"obstacles": "ood/obstacles", "grid": "ood/grid", "markers": "ood/markers"}
#: The output that answers every processed frame (replay counts answers on it).
PRIMARY = IMAGE_OUTPUTS["mask"]
#: How the node's start-up line begins, once its model is loaded and warmed up (replay and the replay launch
#: file start the frames only then).
READY_MARK = "ready:"


def camera_info_for(image_topic: str) -> str:
    """Where a camera driver (image_transport) puts the CameraInfo of `image_topic`: beside its base topic,
    e.g. /front/image_raw and /front/image_raw/compressed -> /front/camera_info."""
    base = image_topic[: -len("/compressed")] if image_topic.endswith("/compressed") else image_topic
    return base.rsplit("/", 1)[0] + "/" + CAMERA_INFO if "/" in base else CAMERA_INFO


#: How the names of a `cameras` list may look: one ROS name token each (they become topic prefixes and
#: parameter prefixes, `<name>/image` and `<name>.camera_height`).
CAMERA_NAME = r"[A-Za-z][A-Za-z0-9_]*"


def camera_names(value) -> Tuple[str, ...]:
    """The camera names of the node's `cameras` parameter: a string of names separated by commas or spaces,
    or a list of names (a YAML list); () for the single camera of old. ConfigError for a bad or repeated name."""
    if isinstance(value, str):
        names = [n for n in re.split(r"[,\s]+", value) if n]
    elif isinstance(value, (list, tuple)) and all(isinstance(n, str) for n in value):
        names = [n.strip() for n in value]
    else:
        raise ConfigError(f"parameter cameras must be camera names (a list, or a string 'front,left'), got {value!r}")
    for name in names:
        if not re.fullmatch(CAMERA_NAME, name):
            raise ConfigError(f"parameter cameras: {name!r} is not a camera name (a letter, then letters, digits "
                              "or '_': it prefixes topics and parameters)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"parameter cameras names {', '.join(repeated)} more than once")
    return tuple(names)


def camera_topic(camera: str, topic: str) -> str:
    """`topic` of camera `camera` (relative): `front/ood/mask`; the single camera of old ('') keeps `topic`."""
    return f"{camera}/{topic}" if camera else topic


#: CameraInfo of the image outputs, beside each group of them (`ood/camera_info`, `semantic/camera_info`): where an
#: image_transport camera subscriber (RViz's Camera display, image_geometry users) looks for an image's calibration.
OUTPUT_CAMERA_INFO = tuple(sorted({camera_info_for(topic) for topic in IMAGE_OUTPUTS.values()}))
#: Lossless PNG copies (sensor_msgs/CompressedImage) on image_transport's `<topic>/compressed`.
COMPRESSED_OUTPUTS: Dict[str, str] = {name: IMAGE_OUTPUTS[name] + "/compressed" for name in ("labels", "mask")}
#: vision_msgs/LabelInfo out, latched, when vision_msgs is installed (beside the JSON `classes`).
LABEL_INFO = "semantic/label_info"


def label_topic_for(image_topic: str) -> str:
    """Where a bag with ground truth keeps the OOD label of `image_topic` (mono8, same stamps): beside its base
    topic like the CameraInfo, e.g. /front/image_raw -> /front/ood_label (generated bags; `hypood fleet`)."""
    info = camera_info_for(image_topic)
    return info[: -len(CAMERA_INFO)] + OOD_LABEL
