"""Outputs that go with the images: their camera_info, lossless PNG copies of labels and mask, LabelInfo.

camera_info: the camera_info matched to the frame (by stamp, the obstacle outputs' matching) with the frame's
header, carried to the output's size (`geometry.camera_info.for_output`), on `ood/camera_info` and
`semantic/camera_info`: beside the image outputs, where RViz's Camera display and image_geometry users
look for an image's calibration. A frame without a matched camera_info gets none (counted in diagnostics).
A named camera (`cameras`) has its own: `front/ood/camera_info`, `front/ood/mask/compressed`, ...

PNG: `semantic/labels/compressed` and `ood/mask/compressed` (sensor_msgs/CompressedImage, the format string
of image_transport's compressed transport), lossless, for recorders and remote viewers.

LabelInfo: vision_msgs/LabelInfo (class ids and names, latched) when vision_msgs is installed, for consumers
such as Nav2's semantic segmentation layer; the JSON `classes` topic stays for installs without it. One per
node, like `classes`: every camera has the same classes.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from sensor_msgs.msg import CameraInfo, CompressedImage

from hypood_ros import topics
from hypood_ros.classes import UNLABELLED, ClassInfo
from hypood_ros.geometry.camera_info import Calibration, for_output
from hypood_ros.node.qos import publisher, qos
from hypood_ros.png import encode_png, png_format


def load_vision_msgs():
    """(LabelInfo, VisionClass) from vision_msgs when it is installed, else None."""
    try:
        from vision_msgs.msg import LabelInfo, VisionClass
    except ImportError:
        return None
    return LabelInfo, VisionClass


def label_info(classes: ClassInfo, label_info_type, vision_class_type, stamp=None):
    """The class map of the `semantic/labels` ids: one VisionClass per class, and 255 for unlabelled pixels.
    `threshold` stays 0: the labels are the arg-max class, no confidence threshold is applied to them."""
    msg = label_info_type()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.class_map = [vision_class_type(class_id=i, class_name=name) for i, name in enumerate(classes.names)]
    msg.class_map.append(vision_class_type(class_id=UNLABELLED, class_name="unlabelled"))
    msg.threshold = 0.0
    return msg


def output_info(info: CameraInfo, header, height: int, width: int) -> CameraInfo:
    """`info` for an output of `height` x `width`, with the output's header: the same calibration at the size
    it describes, else K and P for the output's pixels (D, R and the distortion model unchanged)."""
    roi = info.roi
    given = Calibration(info.width, info.height, tuple(info.k), tuple(info.p), info.binning_x, info.binning_y,
                        (roi.x_offset, roi.y_offset, roi.width, roi.height))
    calibration = for_output(given, height, width)
    if calibration is given:
        return CameraInfo(header=header, height=info.height, width=info.width, distortion_model=info.distortion_model,
                          d=info.d, k=info.k, r=info.r, p=info.p, binning_x=info.binning_x,
                          binning_y=info.binning_y, roi=info.roi)
    return CameraInfo(header=header, height=calibration.height, width=calibration.width,
                      distortion_model=info.distortion_model, d=info.d, k=list(calibration.k), r=info.r,
                      p=list(calibration.p))


def label_info_publisher(node, classes: ClassInfo, vision=None):
    """The latched LabelInfo publisher of the node (one per node, whatever its cameras), its message published;
    None without vision_msgs. `vision`: (LabelInfo, VisionClass), else imported here."""
    vision = load_vision_msgs() if vision is None else vision
    if not vision:
        return None
    pub = publisher(node, vision[0], topics.LABEL_INFO, qos("reliable", 1, latched=True))
    pub.publish(label_info(classes, *vision, stamp=node.get_clock().now().to_msg()))
    return pub


class SideOutputs:
    """One camera's side outputs, beside its image outputs (`camera` '' : the single camera's unprefixed topics,
    else under `<camera>/`); `publish` is called by the worker thread after the camera's image outputs."""

    def __init__(self, node, output_qos, camera: str = "") -> None:
        self._node = node
        self._infos = [publisher(node, CameraInfo, topics.camera_topic(camera, topic), output_qos)
                       for topic in topics.OUTPUT_CAMERA_INFO]
        self._compressed = {name: publisher(node, CompressedImage, topics.camera_topic(camera, topic), output_qos)
                            for name, topic in topics.COMPRESSED_OUTPUTS.items()}
        self.counts: Dict[str, Any] = {"camera_info_out": 0, "camera_info_missing": 0}

    def publish(self, header, result, values: Mapping[str, Any], info: Optional[CameraInfo]) -> None:
        for name, pub in self._compressed.items():
            image = getattr(result, name)
            if image is None or not values[f"publish_compressed_{name}"]:
                continue
            msg = CompressedImage(header=header, format=png_format("mono8"))
            msg.data = encode_png(image, values["png_level"])
            pub.publish(msg)
            self.counts[f"png_bytes_{name}"] = len(msg.data)
        if not values["publish_camera_info"]:
            return
        if info is None:
            self.counts["camera_info_missing"] += 1
            return
        shapes = [image.shape for image in (result.mask, result.labels, result.score, result.color, result.overlay)
                  if image is not None]
        if not shapes:
            return
        out = output_info(info, header, shapes[0][0], shapes[0][1])
        for pub in self._infos:
            pub.publish(out)
        self.counts["camera_info_out"] += 1

    def close(self) -> None:
        for pub in [*self._infos, *self._compressed.values()]:
            self._node.destroy_publisher(pub)
