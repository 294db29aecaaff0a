"""Known obstacles found or missed, reported obstacles matched to them, range bands and range errors, on
hand-made frames."""
import numpy as np
import pytest

from hypood_ros.evaluation.obstacles import (
    MATCH_PIXELS,
    KnownObstacle,
    ObstacleTally,
    Report,
    match_reports,
    obstacle_sious,
    range_band,
)


def two_objects():
    """A 40x60 frame: object 1 a block of rows 10-19, columns 5-14; object 2 two 'legs' (columns 30-31 and
    40-41, rows 20-29) under a 'body' (rows 14-19, columns 30-41), so its box holds road between the legs."""
    ids = np.zeros((40, 60), np.uint16)
    ids[10:20, 5:15] = 1
    ids[14:20, 30:42] = 2
    ids[20:30, 30:32] = 2
    ids[20:30, 40:42] = 2
    return ids


def test_reports_match_the_object_their_ground_point_lands_in_or_beside():
    ids = two_objects()
    points = np.array([
        [9.0, 15.0],  # on object 1
        [35.0, 29.0],  # between object 2's legs: inside its box, on no pixel of it
        [10.0, 19.5 + MATCH_PIXELS - 1.0],  # just below object 1, within the margin
        [10.0, 19.5 + MATCH_PIXELS + 1.0],  # further below: no object
        [55.0, 35.0],  # on the road far from both
        [np.nan, np.nan],  # behind the camera
        [21.9, 18.0],  # where both widened boxes overlap: object 1's column 14 is nearer than object 2's 30
        [22.1, 18.0],  # and here object 2's
    ])
    assert match_reports(points, ids).tolist() == [1, 2, 1, 0, 0, 0, 1, 2]
    assert match_reports(np.zeros((0, 2)), ids).tolist() == []
    assert match_reports(points, np.zeros_like(ids)).tolist() == [0] * len(points)


def test_range_bands():
    assert [range_band(r) for r in (0.0, 9.99, 10.0, 19.9, 20.0, 29.99, 30.0, 250.0)] == \
        ["0-10", "0-10", "10-20", "10-20", "20-30", "20-30", "30+", "30+"]
    with pytest.raises(ValueError):
        range_band(-1.0)


def test_sious_treat_touching_objects_apart_and_skip_the_smallest():
    ids = np.zeros((20, 30), np.uint16)
    ids[5:10, 5:10] = 1  # 25 pixels
    ids[5:10, 10:15] = 2  # 25 pixels, touching object 1
    ids[15, 20:23] = 3  # 3 pixels: under the smallest ground-truth size below
    label = np.where(ids > 0, 1, 0).astype(np.uint8)
    label[0] = 255
    mask = ids == 1  # exactly object 1
    assert obstacle_sious(mask, label, ids, (0, 4)) == {1: 1.0, 2: 0.0}
    # as one connected component (the benchmark's own ground truth) the two objects share the score
    from hypood_ros.evaluation.components import instances, segment_metrics

    assert segment_metrics(*instances(mask, label, 0, 4)).siou_gt.tolist() == [0.5]
    half = np.zeros_like(mask)
    half[5:10, 5:8] = True  # 15 of object 1's 25 pixels
    assert obstacle_sious(half, label, ids, (0, 4)) == {1: 0.6, 2: 0.0}
    assert obstacle_sious(half, label, ids, (16, 4)) == {1: 0.0, 2: 0.0}  # the prediction is too small


def test_tally_counts_found_and_missed_by_range_and_measures_the_reported_ranges():
    tally = ObstacleTally()
    # frame 0: A found at 8 m (two reports matched: the nearer range counts), B missed at 15 m (reported all the
    # same: a report, not a false obstacle), C found at 35 m with its contact hidden, one false report
    frame = tally.add(0, [KnownObstacle(1, 8.0), KnownObstacle(2, 15.0), KnownObstacle(3, 35.0, contact_visible=False)],
                      {1: 0.8, 2: 0.1, 3: 0.25},
                      [Report(8.5, 0, 0), Report(9.0, 0, 0), Report(14.0, 0, 0), Report(36.0, 0, 0), Report(3.0, 0, 0)],
                      [1, 1, 2, 3, 0])
    assert [(o["found"], o["reported_range"], o["range_error"], o["reported_range_error"])
            for o in frame["obstacles"]] == [(True, 8.5, 0.5, 0.5), (False, 14.0, None, -1.0), (True, 36.0, None, None)]
    assert frame["false_obstacles"] == 1 and frame["reported"] == 5
    # frame 1: D found at 25 m, reported 24 m; E found at 12 m with no report; nothing false
    tally.add(1, [KnownObstacle(4, 25.0), KnownObstacle(5, 12.0)], {4: 0.5, 5: 0.9, 6: 0.0},
              [Report(24.0, 0, 0)], [4])
    # frame 2: nothing in view, two false reports
    tally.add(2, [], {}, [Report(5.0, 0, 0), Report(6.0, 0, 0)], [0, 0])
    s = tally.summary()
    assert (s["frames"], s["in_view"], s["found"], s["missed"]) == (3, 5, 4, 1)
    assert s["bands"] == {"0-10": {"found": 1, "missed": 0, "share_found": 1.0},
                          "10-20": {"found": 1, "missed": 1, "share_found": 0.5},
                          "20-30": {"found": 1, "missed": 0, "share_found": 1.0},
                          "30+": {"found": 1, "missed": 0, "share_found": 1.0}}
    assert s["share_found_within_30m"] == pytest.approx(3 / 4)
    error = s["range_error"]  # errors +0.5 m (of 8 m) and -1 m (of 25 m)
    assert error["obstacles"] == 2 and error["found_without_report"] == 1 and error["found_contact_hidden"] == 1
    assert error["abs_m"]["median"] == pytest.approx(0.75) and error["abs_m"]["p90"] == pytest.approx(0.95)
    assert error["rel"]["median"] == pytest.approx((0.0625 + 0.04) / 2)
    assert error["rel"]["p90"] == pytest.approx(0.04 + 0.9 * (0.0625 - 0.04))
    assert error["signed_median_m"] == pytest.approx(-0.25)
    anyone = s["range_error_any_report"]  # found or not: +0.5 of 8 m, -1 of 15 m (B, missed), -1 of 25 m
    assert anyone["obstacles"] == 3 and anyone["signed_median_m"] == pytest.approx(-1.0)
    assert anyone["abs_m"] == pytest.approx({"median": 1.0, "p90": 1.0})
    assert anyone["rel"]["median"] == pytest.approx(1 / 16)
    assert s["false_obstacles"] == {"total": 3, "per_frame": 1.0, "max_in_a_frame": 2, "reported": 8}


def test_tally_without_anything_to_measure_and_refusals():
    s = ObstacleTally().summary()
    assert s["in_view"] == 0 and s["share_found_within_30m"] is None
    assert s["range_error"]["abs_m"] is None and s["false_obstacles"]["per_frame"] is None
    assert all(b["share_found"] is None for b in s["bands"].values())
    tally = ObstacleTally()
    with pytest.raises(ValueError, match="no sIoU"):
        tally.add(0, [KnownObstacle(1, 5.0)], {}, [], [])
    with pytest.raises(ValueError, match="matches"):
        tally.add(0, [], {}, [Report(5.0, 0, 0)], [])
