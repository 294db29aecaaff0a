"""Generated street scenes: determinism, exact masks, each anomaly's own pixels and true position, forward
motion, the three writers, generated outliers."""
import dataclasses
import hashlib
import random

import numpy as np
import pytest

from hypood_ros.synthetic import writers
from hypood_ros.synthetic.anomalies import FAMILIES, SyntheticOutliers, sprite
from hypood_ros.synthetic.canvas import OOD, VOID, Canvas
from hypood_ros.synthetic.scene import ROAD, SKY, make_street, render, render_view


def test_same_seed_same_scene_other_seed_other_scene():
    a = render(make_street(3, anomalies="evaluation", anomaly_count=2), 5.0, t=1.0)
    b = render(make_street(3, anomalies="evaluation", anomaly_count=2), 5.0, t=1.0)
    c = render(make_street(4, anomalies="evaluation", anomaly_count=2), 5.0, t=1.0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])
    drive1 = [(f.rgb, f.label, f.ood, f.stamp_ns) for f in writers.drive(11, 3)]
    drive2 = [(f.rgb, f.label, f.ood, f.stamp_ns) for f in writers.drive(11, 3)]
    for f1, f2 in zip(drive1, drive2):
        for x, y in zip(f1, f2):
            np.testing.assert_array_equal(x, y)


def test_labels_are_train_ids_with_road_and_sky():
    rgb, label, ood = render(make_street(5), 0.0)
    assert rgb.shape == (240, 480, 3) and rgb.dtype == np.uint8 and label.shape == (240, 480)
    assert set(np.unique(label).tolist()) <= set(range(19)) | {VOID}
    assert (label == ROAD).mean() > 0.1 and (label == SKY).any()
    assert not ood.any()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_anomaly_mask_is_exactly_the_pixels_the_objects_drew(seed):
    street = make_street(seed, anomalies="evaluation", anomaly_count=3, anomaly_range=(8.0, 25.0))
    rgb, label, ood = render(street, 0.0, effects=False)
    rgb0, label0, ood0 = render(street, 0.0, effects=False, skip_anomalies=True)
    assert ood.sum() > 50 and not ood0.any()
    changed = (rgb != rgb0).any(2) | (label != label0)
    assert not (changed & ~ood).any(), "pixels outside the mask changed"
    assert changed[ood].mean() > 0.97, "mask pixels the objects did not draw"
    assert (label[ood] == VOID).all()  # train ids: anomalies are no class
    np.testing.assert_array_equal(label[~ood], label0[~ood])


def _digest(frames):
    digest = hashlib.sha256()
    for f in frames:
        for array in (f.rgb, f.label, f.ood):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def test_pictures_and_labels_of_fixed_seeds_are_unchanged():
    """The shipped demo model was trained and measured on these pictures: drawing each anomaly's own pixels
    (instance maps) must not change a pixel or a label. Digests taken before instance maps existed."""
    assert _digest(writers.drive(500_001, 8)) == "485f95bbd79b0d9bcc1fd9effa2b0d9e78b6a19271747b1568810ec1b139da91"
    assert _digest([writers.scene(100 + i, family="evaluation", anomalies=3) for i in range(3)]) == \
        "44bf6ae8f0acc7303a565574efe668ff76065d9fab0fff576a39d4858b86ac21"
    assert _digest([writers.scene(900_000 + i, family="training", anomalies=2) for i in range(2)]) == \
        "5efa0b947fae4c37f44a058019b58d68e3b6dbaa4033343da0c20fcf74e24929"


def test_each_anomaly_has_exactly_the_pixels_it_drew():
    """Instance ids cover the OOD mask exactly, and id k holds the pixels that anomaly k drew and that nothing
    nearer covered: taking anomaly k out of the street changes those pixels and no others. Among these
    streets one anomaly stands in front of another (taken out, the farther one shows again behind it)."""
    revealed = 0
    for seed in range(1, 7):
        street = make_street(seed, anomalies="evaluation", anomaly_count=3, anomaly_range=(8.0, 25.0))
        view = render_view(street, 0.0, effects=False)
        np.testing.assert_array_equal(view.instances > 0, view.ood)
        np.testing.assert_array_equal(render(street, 0.0, effects=False)[0], view.rgb)
        things = [t for t in street.things if t.kind.startswith("anomaly:")]
        assert view.anomalies and {a.id for a in view.anomalies} <= set(range(1, len(things) + 1))
        counts = np.bincount(view.instances.ravel(), minlength=len(things) + 1)
        for a in view.anomalies:
            assert a.pixels == counts[a.id]
            without = dataclasses.replace(street, things=[t for t in street.things if t is not things[a.id - 1]])
            rgb0, label0, ood0 = render(without, 0.0, effects=False)
            changed = (view.rgb != rgb0).any(2) | (view.label != label0)
            own = view.instances == a.id
            assert not (changed & ~own).any(), f"street {seed}, anomaly {a.id}: pixels of others changed"
            assert a.pixels == 0 or changed[own].mean() > 0.97, f"street {seed}, anomaly {a.id}: pixels it did not draw"
            revealed += int((own & ood0).sum())
    assert revealed > 0


def test_true_positions_agree_with_the_camera():
    """Each anomaly's ground point, taken through the node's own camera model and pose from what the frame
    carries (camera_info intrinsics, camera height, pitch 0), lands on the bottom row of its pixels, and its
    range is the distance the node's geometry finds for that pixel; a drawing that ends above its placed ground
    point (debris) is placed where its lowest row meets the road; one whose lowest row is hidden says so."""
    from hypood_ros.geometry import CameraModel, CameraPose, ground_points

    seen = {"standing": 0, "hovering": 0, "hidden": 0}
    for seed in range(100, 130):
        f = writers.scene(seed, family="evaluation", anomalies=3)
        height, width = f.label.shape
        fx, cx, cy = f.intrinsics
        assert cy == pytest.approx(f.horizon * height) and 1.2 <= f.camera_height <= 1.7
        camera = CameraModel.from_camera_info(width, height, [fx, 0, cx, 0, fx, cy, 0, 0, 1], [0.0] * 5, "plumb_bob")
        pose = CameraPose.from_parameters(f.camera_height)
        for a in f.anomalies:
            assert a.range == pytest.approx(np.hypot(a.dx, a.dz))
            u, v = camera.project(pose.to_optical([[a.dz, -a.dx, 0.0]]))[0]  # base_frame: x ahead, y left
            assert (u, v) == pytest.approx((a.u, a.v), abs=1e-6)
            rays, t = ground_points(camera, pose, np.array([a.u]), np.array([a.v]))
            ground = pose.translation + t[0] * rays[0]
            assert np.hypot(ground[0], ground[1]) == pytest.approx(a.range, rel=1e-9)
            rows, cols = np.nonzero(f.instances == a.id)
            if not a.contact_visible:
                assert rows.max() < a.v - 0.4  # its visible part ends above where it meets the road
                seen["hidden"] += 1
                continue
            assert abs(rows.max() - a.v) <= 1.0, (seed, a)
            if a.shape != "debris" and 0 <= a.u < width:  # the debris' random outline need not surround its centre
                assert cols.min() <= a.u <= cols.max(), (seed, a)
            seen["hovering" if a.hover else "standing"] += 1
    assert min(seen.values()) >= 3, seen


def test_anomaly_ids_are_stable_along_a_drive():
    frames = list(writers.drive(500_000, 40, fps=10.0, speed=8.0, anomalies=3))
    tracks = {}
    for f in frames:
        for a in f.anomalies:
            tracks.setdefault(a.id, []).append((f.index, a))
    assert len(tracks) == 3
    for steps in tracks.values():
        assert len(steps) >= 5
        for (i, a), (j, b) in zip(steps, steps[1:]):
            assert a.shape == b.shape
            if not (a.hover or b.hover):  # a hovering drawing is placed along its ray (see the test above)
                assert b.dx == pytest.approx(a.dx) and a.dz - b.dz == pytest.approx(0.8 * (j - i))  # 8 m/s, 10 Hz


def test_canvas_labels_exactly_what_it_colours():
    c = Canvas(50, 60, np.random.default_rng(0))
    drawn = c.fill([np.array([[5, 5], [40, 8], [30, 45]]), np.array([[20, 20], [55, 20], [55, 48]])],
                   (200, 10, 10), OOD)
    np.testing.assert_array_equal(drawn, c.label == OOD)
    assert (c.rgb[drawn][:, 1] < 20).all() and (c.rgb[~drawn] == 0).all()
    assert drawn[20:30, 30:40].all()  # the overlap of the two polygons is filled, not cancelled


def test_drive_moves_the_camera_forward():
    frames = list(writers.drive(21, 25, fps=10, speed=10.0, anomalies=1))
    areas = [f.ood.sum() for f in frames]
    seen = [i for i, a in enumerate(areas) if a > 0]
    assert len(seen) >= 5
    first, biggest = seen[0], int(np.argmax(areas))  # later it leaves the picture under the hood
    assert biggest > first and areas[biggest] > 2 * areas[first], "the anomaly grows as the car approaches"
    bottom = [np.nonzero(f.ood)[0].max() for f in (frames[first], frames[biggest])]
    assert bottom[1] > bottom[0], "and slides down the picture"
    assert [f.stamp_ns - frames[0].stamp_ns for f in frames[:3]] == [0, 100_000_000, 200_000_000]


def test_families_are_disjoint_and_outliers_come_from_training():
    assert not set(FAMILIES["training"]) & set(FAMILIES["evaluation"])
    assert set(FAMILIES["training"]) and set(FAMILIES["evaluation"])
    assert SyntheticOutliers.family == "training"
    rgb, mask = SyntheticOutliers()(random.Random(0))
    assert rgb.shape[:2] == mask.shape and mask.any() and rgb.dtype == np.uint8
    for family in FAMILIES:
        for seed in range(6):
            rgb, mask = sprite(family, 40, np.random.default_rng(seed))
            assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()  # cropped


def test_anomaly_mix_pastes_generated_outliers():
    from hypood_ros.training.anomaly_mix import AnomalyMix

    mix = AnomalyMix(SyntheticOutliers(), prob=1.0, scale=[0.2, 0.4], ood_label=254)
    rgb = np.zeros((112, 224, 3), np.uint8)
    label = np.zeros((112, 224), np.uint8)
    out_rgb, out_label = mix(rgb, label, random.Random(3))
    pasted = out_label == 254
    assert pasted.sum() > 30
    assert not (out_label[~pasted]).any() and not out_rgb[~pasted].any()


def test_cityscapes_layout_reads_back_for_training(tmp_path):
    from hypood_ros.training.cityscapes import CityscapesTrain, read_label, val_pairs

    writers.write_cityscapes(tmp_path, "train", range(3))
    writers.write_cityscapes(tmp_path, "val", range(3, 5))
    data = CityscapesTrain(tmp_path, [112, 224], [1.0, 1.0], False)
    assert len(data) == 3
    image, label = data[0]
    assert image.shape == (3, 112, 224) and label.shape == (112, 224)
    pairs = val_pairs(tmp_path)
    assert len(pairs) == 2
    np.testing.assert_array_equal(read_label(pairs[0][1]), writers.scene(3).label)


def test_smiyc_layout_reads_back_for_evaluation(tmp_path):
    from hypood_ros.evaluation.datasets import open_dataset

    frames = [writers.scene(100 + i, family="evaluation", anomalies=2) for i in range(3)]
    for i, f in enumerate(frames):
        f.index = i
    frames[0].ood[:] = False  # a frame without anomalies is left out, as in the benchmark
    names = writers.write_smiyc(tmp_path, frames)
    assert names == ["validation_synth0001", "validation_synth0002"]
    data = open_dataset("smiyc-anomaly", tmp_path)
    rgb, label = data.load(data.samples[0])
    np.testing.assert_array_equal(rgb, frames[1].rgb)
    np.testing.assert_array_equal(label == 1, frames[1].ood)
    np.testing.assert_array_equal(label == 255, (frames[1].label == VOID) & ~frames[1].ood)
    writers.write_smiyc(tmp_path, frames, track="ObstacleTrack")
    road = open_dataset("smiyc-obstacle", tmp_path)
    rgb, label = road.load(road.samples[1])
    np.testing.assert_array_equal(label == 1, frames[2].ood)
    np.testing.assert_array_equal(label == 0, frames[2].label == ROAD)
    assert (label == 255).any()


def test_bag_opens_with_rosbags(tmp_path):
    from rosbags.highlevel import AnyReader

    from hypood_ros.bags import frame_rgb, read_frames, typestore

    frames = list(writers.drive(5, 4, fps=20.0))
    assert writers.write_bag(tmp_path / "drive", frames) == 4
    with AnyReader([tmp_path / "drive"], default_typestore=typestore()) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics == {"/front/image_raw": "sensor_msgs/msg/Image",
                          "/front/camera_info": "sensor_msgs/msg/CameraInfo"}
        infos = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                 if c.topic == "/front/camera_info"]
    assert len(infos) == 4 and infos[0].width == 480 and infos[0].k[0] > 0
    read = list(read_frames(tmp_path / "drive", "/front/image_raw"))
    assert [f.msg.header.stamp.nanosec for f in read] == [0, 50_000_000, 100_000_000, 150_000_000]
    assert read[0].msg.header.frame_id == "front_camera"
    for f, bag_frame in zip(frames, read):
        np.testing.assert_array_equal(frame_rgb(bag_frame), f.rgb)
    with pytest.raises(Exception, match="exists"):
        writers.write_bag(tmp_path / "drive", frames)


def test_training_options_validate():
    from hypood_ros.errors import ConfigError
    from hypood_ros.training.config import load_config
    from hypood_ros.training.trainer import build_model

    cfg = load_config(None, ["preset=tiny", "train_backbone=true"], stage="segmentor")
    model, trainable = build_model(cfg)
    assert all(p.requires_grad for p in model.backbone.parameters())
    frozen, _ = build_model(load_config(None, ["preset=tiny"], stage="segmentor"))
    assert not any(p.requires_grad for p in frozen.backbone.parameters())
    with pytest.raises(ConfigError, match="train_backbone"):
        load_config(None, ["train_backbone=true"], stage="uem", init="x.pt")
    with pytest.raises(ConfigError, match="outliers"):
        load_config(None, ["outliers=imagenet"], stage="segmentor")
