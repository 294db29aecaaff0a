"""The calibration and PNG payloads of the node's side outputs, without ROS (geometry.camera_info, png,
node.side_outputs.label_info with a stand-in of vision_msgs' messages)."""
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import List

import numpy as np
import pytest

from hypood_ros.classes import default_classes
from hypood_ros.geometry.camera import CameraError
from hypood_ros.geometry.camera_info import Calibration, for_output
from hypood_ros.png import decode_png, encode_png, png_format

K = (800.0, 0.0, 652.3, 0.0, 790.0, 361.7, 0.0, 0.0, 1.0)
P = (780.0, 0.0, 640.5, -39.0, 0.0, 780.0, 360.2, 0.0, 0.0, 0.0, 1.0, 0.0)  # a right stereo camera: Tx = -fx * B


def project(matrix, points):
    """Pixel coordinates of 3-D points (optical frame) through a 3x3 K or 3x4 P."""
    m = np.asarray(matrix, dtype=np.float64).reshape(3, -1)
    homogeneous = points if m.shape[1] == 3 else np.hstack([points, np.ones((len(points), 1))])
    uvw = homogeneous @ m.T
    return uvw[:, :2] / uvw[:, 2:]


POINTS = np.random.default_rng(0).uniform([-5, -3, 2], [5, 3, 40], (50, 3))


def test_an_output_of_the_described_size_keeps_the_calibration():
    cal = Calibration(1280, 720, K, P, binning_x=2, binning_y=2, roi=(100, 60, 1000, 600))
    assert cal.image_size() == (300, 500)
    assert for_output(cal, 300, 500) is cal
    plain = Calibration(1280, 720, K, P)
    assert for_output(plain, 720, 1280) is plain


@pytest.mark.parametrize("out_hw", [(360, 640), (518, 1036), (1440, 2560)])
def test_a_scaled_output_keeps_pixel_centres_aligned(out_hw):
    cal = Calibration(1280, 720, K, P)
    out = for_output(cal, *out_hw)
    sy, sx = out_hw[0] / 720, out_hw[1] / 1280
    assert (out.height, out.width) == out_hw
    for matrix, scaled in ((cal.k, out.k), (cal.p, out.p)):
        before, after = project(matrix, POINTS), project(scaled, POINTS)
        np.testing.assert_allclose(after[:, 0], (before[:, 0] + 0.5) * sx - 0.5, atol=1e-9)
        np.testing.assert_allclose(after[:, 1], (before[:, 1] + 0.5) * sy - 0.5, atol=1e-9)
    assert out.p[3] == pytest.approx(P[3] * sx)  # the baseline term scales with fx
    assert out.k[8] == 1.0 and out.p[10] == 1.0


def test_binning_and_roi_are_folded_into_a_scaled_output():
    """A 2x2-binned region of the sensor, scaled again: one sensor pixel maps to the same output pixel
    as going region -> binned -> scaled step by step."""
    x0, y0, b = 100, 60, 2
    cal = Calibration(1280, 720, K, P, binning_x=b, binning_y=b, roi=(x0, y0, 1000, 600))
    out = for_output(cal, 150, 250)  # the 500x300 binned image halved
    assert (out.binning_x, out.binning_y, out.roi) == (0, 0, (0, 0, 0, 0))
    full = project(cal.k, POINTS)
    binned = (full - [x0, y0] + 0.5) / b - 0.5
    expected = (binned + 0.5) * 0.5 - 0.5
    np.testing.assert_allclose(project(out.k, POINTS), expected, atol=1e-9)


def test_unusable_calibrations_are_refused():
    with pytest.raises(CameraError, match="no image size"):
        for_output(Calibration(0, 0, K, P), 10, 10)
    with pytest.raises(CameraError, match="K must have 9"):
        for_output(Calibration(640, 480, K[:4], P), 240, 320)


@pytest.mark.parametrize("level", [0, 3, 9])
def test_png_is_lossless_and_has_the_transport_format(level):
    rng = np.random.default_rng(level)
    labels = rng.integers(0, 19, (37, 53), dtype=np.uint8)
    labels[:5] = 255
    data = encode_png(labels, level)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = decode_png(data)
    assert decoded.dtype == np.uint8 and decoded.shape == labels.shape
    np.testing.assert_array_equal(decoded, labels)
    # compressed_image_transport's subscriber takes the encoding from before ';' and looks for "png"
    fmt = png_format("mono8")
    assert fmt == "mono8; png compressed " and fmt.split(";")[0] == "mono8"


def test_png_refuses_what_is_not_a_mono8_image():
    with pytest.raises(ValueError, match="HxW uint8"):
        encode_png(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="HxW uint8"):
        encode_png(np.zeros((4, 4), np.float32))


# vision_msgs has no wheel for this environment: a stand-in with LabelInfo's and VisionClass's fields
@dataclass
class VisionClassStandIn:
    class_id: int = 0
    class_name: str = ""


@dataclass
class LabelInfoStandIn:
    header: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(stamp=None, frame_id=""))
    class_map: List[VisionClassStandIn] = field(default_factory=list)
    threshold: float = 0.0


def test_label_info_maps_every_label_id_to_its_name():
    pytest.importorskip("rclpy")
    from hypood_ros.node.side_outputs import label_info

    classes = default_classes(19)
    msg = label_info(classes, LabelInfoStandIn, VisionClassStandIn, stamp="now")
    assert msg.header.stamp == "now" and msg.threshold == 0.0
    assert [(c.class_id, c.class_name) for c in msg.class_map[:2]] == [(0, "road"), (1, "sidewalk")]
    assert msg.class_map[-1].class_id == 255 and msg.class_map[-1].class_name == "unlabelled"
    assert [c.class_name for c in msg.class_map[:-1]] == list(classes.names)
