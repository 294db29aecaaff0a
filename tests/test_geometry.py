"""Camera model, ground-plane obstacles and the local grid against rendered road scenes of known geometry."""
import math

import cv2
import numpy as np
import pytest
from road_scene import POSE, Box, cameras, nearest_point, pixel_rays, render

from hypood_ros.errors import ConfigError
from hypood_ros.geometry import CameraError, CameraModel, CameraPose, GridConfig, LocalGrid, find_obstacles, to_frame

SCENE = [Box(5.0, -1.0), Box(10.0, 1.5), Box(20.0, -2.5), Box(30.0, 3.0), Box(40.0, -0.5)]


@pytest.fixture(scope="module")
def pose():
    return CameraPose.from_parameters(**POSE)


@pytest.mark.parametrize("camera", cameras(), ids=lambda c: c.distortion_model or "pinhole")
def test_projection_matches_opencv_and_undistortion_inverts_it(camera, pose):
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(-6, 6, 500), rng.uniform(-1, 3, 500), rng.uniform(4, 60, 500)])
    k, d = camera.matrix, np.asarray(camera.coeffs, dtype=np.float64)
    if camera.distortion_model == "equidistant":
        ref = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), k, d)[0].reshape(-1, 2)
    else:
        ref = cv2.projectPoints(points, np.zeros(3), np.zeros(3), k, d if len(d) else None)[0].reshape(-1, 2)
    pixels = camera.project(points)
    assert np.abs(pixels - ref).max() < 1e-6
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < camera.width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < camera.height)
    xn, yn = camera.undistort(pixels[inside, 0], pixels[inside, 1])
    assert np.abs(xn - points[inside, 0] / points[inside, 2]).max() < 1e-7
    assert np.abs(yn - points[inside, 1] / points[inside, 2]).max() < 1e-7


@pytest.mark.parametrize("camera", cameras(), ids=lambda c: c.distortion_model or "pinhole")
def test_ground_points_project_back_to_their_pixels(camera, pose):
    """to_optical inverts the pose: pixels -> road points in base_frame -> optical frame -> the same pixels."""
    from hypood_ros.geometry import ground_points

    rng = np.random.default_rng(2)
    u = rng.uniform(0, camera.width - 1, 300)
    v = rng.uniform(camera.height * 0.6, camera.height - 1, 300)
    rays, s = ground_points(camera, pose, u, v)
    hit = np.isfinite(s)
    points = pose.translation + s[hit, None] * rays[hit]
    assert hit.sum() > 200 and np.abs(points[:, 2]).max() < 1e-9
    np.testing.assert_allclose(camera.project(pose.to_optical(points)), np.column_stack([u[hit], v[hit]]), atol=1e-4)
    assert pose.to_optical(pose.translation)[0].tolist() == pytest.approx([0.0, 0.0, 0.0])


@pytest.mark.parametrize("camera", cameras(), ids=lambda c: c.distortion_model or "pinhole")
def test_lower_edge_table_equals_direct_undistortion(camera):
    """The per-row table gives what the iterative inverse gives for the same pixels, filled or not."""
    rng = np.random.default_rng(1)
    for _ in range(3):  # new rows, then rows already in the table, then a mix
        cols = rng.integers(0, camera.width, 400)
        rows = rng.integers(camera.height // 2, camera.height, 400)
        xn, yn = camera.undistort_lower_edges(cols, rows)
        want_x, want_y = camera.undistort(cols.astype(np.float64), rows + 0.5)
        assert np.abs(xn - want_x).max() < 1e-6 and np.abs(yn - want_y).max() < 1e-6
    assert camera == CameraModel(camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy,
                                 camera.distortion_model, camera.coeffs)  # the table is not part of equality
    if camera.distortion_model:
        with pytest.raises(ValueError, match="outside"):
            camera.undistort_lower_edges(np.array([camera.width]), np.array([0]))


@pytest.mark.parametrize("camera", cameras(), ids=lambda c: c.distortion_model or "pinhole")
def test_boxes_on_the_road_are_found_within_3_percent_of_range(camera, pose):
    ids = render(camera, pose, SCENE)
    score = np.where(ids > 0, 10.0 * ids, -1.0).astype(np.float32)
    score[ids == 3] += np.linspace(0, 1, int((ids == 3).sum()), dtype=np.float32)  # a spread for one box
    found = find_obstacles((ids > 0).astype(np.uint8) * 255, camera, pose, max_range=45.0, score=score)
    assert len(found) == len(SCENE) and found.above_horizon == found.too_far == 0
    for i in range(len(found)):
        box = SCENE[int(round(found.score_mean[i] / 10.0)) - 1]
        truth = nearest_point(box)
        # position: the middle of the face the camera sees; range: the nearest point of the footprint
        assert math.hypot(found.x[i] - box.x, found.y[i] - box.y) < 0.03 * truth, box
        assert abs(found.range[i] - truth) < 0.03 * truth, box
        assert abs(found.width[i] - box.width) < 0.15 * box.width, box
        assert abs(found.height[i] - box.height) < 0.15 * box.height, box
        assert found.depth[i] < box.depth + 0.3, box  # leaning vertical edges do not count as contacts
        members = ids == SCENE.index(box) + 1
        assert found.pixels[i] == members.sum()
        assert found.score_mean[i] == pytest.approx(score[members].mean(), rel=1e-5)
        assert found.score_max[i] == pytest.approx(score[members].max(), rel=1e-6)
        points = found.points[found.point_obstacle == i]
        assert len(points) > 10 and (points[:, 2] == 0).all()
        assert np.hypot(points[:, 0], points[:, 1]).min() == pytest.approx(found.range[i])


def test_far_and_above_horizon_components_are_dropped_and_counted(pose):
    camera = cameras()[1]
    ids = render(camera, pose, [Box(12.0, 0.0), Box(60.0, 2.0), Box(80.0, -3.0)])
    mask = (ids > 0).astype(np.uint8) * 255
    mask[20:60, 100:300] = 255  # a blob in the sky: its lowest pixels are above the horizon
    found = find_obstacles(mask, camera, pose, max_range=40.0)
    assert len(found) == 1 and found.range[0] == pytest.approx(12.0, rel=0.03)
    assert found.too_far == 2 and found.above_horizon == 1
    assert np.isnan(found.score_mean).all()  # no score map given
    farther = find_obstacles(mask, camera, pose, max_range=100.0)
    assert len(farther) == 3 and farther.too_far == 0 and farther.above_horizon == 1


def test_only_the_lowest_pixel_of_each_column_counts(pose):
    """A tall thin pole and a wide low box at the same distance give the same range; the pole's body
    (hundreds of pixels above the road) does not pull its position away."""
    camera = cameras()[0]
    ids = render(camera, pose, [Box(15.0, -2.0, width=0.2, depth=0.2, height=4.0), Box(15.0, 2.0, height=0.3)])
    found = find_obstacles((ids > 0).astype(np.uint8), camera, pose, max_range=40.0)
    assert len(found) == 2
    assert np.allclose(np.sort(found.x), 15.1, atol=0.3) and np.allclose(found.range, [15.1, 15.1], rtol=0.03)


def test_statistics_of_arched_and_tall_components(pose):
    """Pixel counts and score statistics cover the whole component, whatever its shape: an arch whose top
    is only reached through its legs, and a bar far taller than it is wide."""
    camera = cameras()[0]
    mask = np.zeros((720, 1280), np.uint8)
    mask[300:311, 100:206] = 255  # arch: top bar
    mask[300:600, 100:106] = 255  # left leg
    mask[300:620, 200:206] = 255  # right leg
    mask[250:650, 400:403] = 255  # tall bar
    score = np.random.default_rng(3).random(mask.shape, dtype=np.float32)
    found = find_obstacles(mask, camera, pose, max_range=100.0, score=score)
    assert len(found) == 2
    _, labels = cv2.connectedComponents(mask, connectivity=8)
    arch, bar = labels == labels[305, 150], labels == labels[400, 401]
    assert sorted(found.pixels) == sorted([arch.sum(), bar.sum()])
    for i in range(len(found)):
        members = arch if found.pixels[i] == arch.sum() else bar
        assert found.score_mean[i] == pytest.approx(score[members].mean(), rel=1e-5)
        assert found.score_max[i] == score[members].max()


def test_parameters_and_the_same_pose_as_a_transform_agree():
    """The TF path (quaternion + translation of the optical frame in base_frame) and the parameter path."""
    roll, pitch, yaw = POSE["roll"], POSE["pitch"], POSE["yaw"]

    def quat_mul(a, b):
        ax, ay, az, aw = a
        bx, by, bz, bw = b
        return (aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz)

    def axis(ax, angle):
        s = math.sin(angle / 2)
        return tuple(s * c for c in ax) + (math.cos(angle / 2),)

    body = quat_mul(axis((0, 0, 1), yaw), quat_mul(axis((0, 1, 0), pitch), axis((1, 0, 0), roll)))
    optical = (-0.5, 0.5, -0.5, 0.5)  # optical frame (z forward, x right, y down) in the body frame
    q = quat_mul(body, optical)
    from_tf = CameraPose.from_transform((POSE["x"], POSE["y"], POSE["height"]), q)
    from_params = CameraPose.from_parameters(**POSE)
    assert np.allclose(from_tf.rotation, from_params.rotation, atol=1e-12)
    assert np.allclose(from_tf.translation, from_params.translation)
    camera = cameras()[1]
    mask = (render(camera, from_params, SCENE) > 0).astype(np.uint8)
    a = find_obstacles(mask, camera, from_params, 45.0)
    b = find_obstacles(mask, camera, from_tf, 45.0)
    assert len(a) == len(SCENE) and np.allclose(a.x, b.x, atol=1e-5) and np.allclose(a.range, b.range, atol=1e-5)
    assert np.allclose(a.points, b.points, atol=1e-5)


def test_camera_info_checks():
    k = [800.0, 0, 320, 0, 800.0, 240, 0, 0, 1]
    cam = CameraModel.from_camera_info(640, 480, k, [0.1, -0.05, 0, 0, 0], "plumb_bob")
    assert cam.distortion_model == "plumb_bob" and cam.coeffs == (0.1, -0.05, 0.0, 0.0, 0.0)
    assert CameraModel.from_camera_info(640, 480, k, [0.0] * 5, "plumb_bob").distortion_model == ""
    rect = CameraModel.from_camera_info(640, 480, k, [0.1], "plumb_bob", p=[700, 0, 300, 0, 0, 700, 200, 0, 0, 0, 1, 0],
                                        rectified=True)
    assert (rect.fx, rect.cx, rect.distortion_model) == (700, 300, "")
    with pytest.raises(CameraError, match="focal length"):
        CameraModel.from_camera_info(640, 480, [0.0] * 9, [], "")
    with pytest.raises(CameraError, match="not supported"):
        CameraModel.from_camera_info(640, 480, k, [0.1] * 5, "kannala_brandt_custom")
    with pytest.raises(CameraError, match="finite"):
        CameraModel.from_camera_info(640, 480, k, [0.1, float("nan"), 0, 0, 0], "plumb_bob")
    with pytest.raises(CameraError, match="takes 4 coefficients"):
        CameraModel.from_camera_info(640, 480, k, [0.1, 0.1, 0.1, 0.1, 0.1], "equidistant")
    with pytest.raises(CameraError, match="no image size"):
        CameraModel.from_camera_info(0, 0, k, [], "")
    with pytest.raises(CameraError, match="does not match"):
        cam.check_size(720, 1280)
    with pytest.raises(CameraError, match="does not match"):
        find_obstacles(np.zeros((720, 1280), np.uint8), cam, CameraPose.from_parameters(1.5), 40.0)
    with pytest.raises(ConfigError, match="above the ground"):
        CameraPose.from_parameters(height=-1.0)


# -- grid ---------------------------------------------------------------------------------------------------

def _frame(camera, pose, boxes, rays):
    return find_obstacles((render(camera, pose, boxes, rays) > 0).astype(np.uint8), camera, pose, 40.0)


def _grid_step(grid, found, vehicle=None):
    """One update: in base_frame per frame without odometry, else in the odometry frame."""
    if vehicle is None:
        grid.update((0.0, 0.0), found.points[:, :2], found.free_polygon, accumulate=False)
    else:
        x, y, yaw = vehicle
        grid.update((x, y), to_frame(found.points[:, :2], x, y, yaw),
                    None if found.free_polygon is None else to_frame(found.free_polygon, x, y, yaw))


def test_grid_needs_repeated_evidence(pose):
    camera = cameras()[0]
    rays = pixel_rays(camera, pose)
    box = Box(12.0, 0.5)
    seen = _frame(camera, pose, [box], rays)
    unseen = _frame(camera, pose, [], rays)
    assert len(seen) == 1 and len(unseen) == 0 and unseen.free_polygon is not None
    cell_x, cell_y = box.x + 0.05, box.y  # just behind the front face

    def run(pattern):
        grid = LocalGrid(GridConfig(size=60.0, resolution=0.2))
        history = []
        for hit in pattern:
            _grid_step(grid, seen if hit else unseen, vehicle=(0.0, 0.0, 0.0))
            row, col = grid.cell_of(cell_x, cell_y)
            history.append(int(grid.occupancy()[row, col]))
        return history, grid

    history, grid = run([1, 0, 1, 0, 1])  # seen in 3 of 5 frames
    assert history[0] != 100 and history[-1] == 100
    history, grid = run([0, 0, 1, 0, 0, 0, 0, 0])  # a single-frame false positive
    assert 100 not in history and history[-1] == 0  # seen free again afterwards
    occupancy = grid.occupancy()
    row, col = grid.cell_of(6.0, 0.0)  # road between the vehicle and the box: seen free
    assert occupancy[row, col] == 0
    row, col = grid.cell_of(-5.0, 0.0)  # behind the vehicle: never seen
    assert occupancy[row, col] == -1
    assert run([1, 1])[0] == [-1, 100]  # two frames in a row are enough with the default evidence

    per_frame = LocalGrid(GridConfig(size=60.0, resolution=0.2))
    _grid_step(per_frame, seen)
    row, col = per_frame.cell_of(cell_x, cell_y)
    assert per_frame.occupancy()[row, col] == 100  # without odometry: this frame's evidence alone
    _grid_step(per_frame, unseen)
    assert per_frame.occupancy()[row, col] == 0


def test_with_odometry_a_static_obstacle_stays_in_its_cell(pose):
    """The vehicle drives 8 m towards a box (and turns slightly); in the odometry frame the box's cell
    stays the same and stays occupied while the grid scrolls with the vehicle."""
    camera = cameras()[1]
    rays = pixel_rays(camera, pose)
    world_box = (20.1, 1.0)  # front face in the middle of a 0.25 m cell
    grid = LocalGrid(GridConfig(size=60.0, resolution=0.25))
    origins, cells = set(), []
    for step in range(9):
        x, y, yaw = 1.0 * step, 0.05 * step, 0.01 * step
        # the box in base_frame at this vehicle pose
        dx, dy = world_box[0] - x, world_box[1] - y
        bx, by = math.cos(yaw) * dx + math.sin(yaw) * dy, -math.sin(yaw) * dx + math.cos(yaw) * dy
        found = _frame(camera, pose, [Box(bx, by, width=1.2, depth=0.1)], rays)
        assert len(found) == 1
        _grid_step(grid, found, vehicle=(x, y, yaw))
        origins.add(grid.origin)
        occupied = np.argwhere(grid.occupancy() == 100)
        if step >= 1:
            assert len(occupied), step
            world = grid.config.resolution * (occupied[:, ::-1] + 0.5) + grid.origin  # cell centres (x, y)
            assert np.abs(world[:, 0] - world_box[0]).max() <= 0.5 and np.abs(world[:, 1] - world_box[1]).max() <= 0.8
            cells.append(grid.cell_of(world_box[0], world_box[1]))
            row, col = cells[-1]
            assert grid.occupancy()[row, col] == 100, step
    assert len(origins) > 5  # the window did scroll


def test_grid_config_is_checked():
    with pytest.raises(ConfigError, match="grid_decay"):
        GridConfig(decay=1.5)
    with pytest.raises(ConfigError, match="grid_free"):
        GridConfig(free=2.0, occupied=1.0)
    with pytest.raises(ConfigError, match="two cells"):
        GridConfig(size=0.1, resolution=0.2)
