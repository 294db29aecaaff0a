"""SMIYC component metrics: hand-worked frames, and the fast version against a literal reference."""
import json

import numpy as np
import pytest

from hypood_ros.errors import HypoodError
from hypood_ros.evaluation.components import (
    SIOU_THRESHOLDS,
    TRACK_SIZES,
    ComponentTally,
    _components,
    _raster_order,
    best_f1_threshold,
    instances,
    instances_from_score,
    segment_metrics,
)

# One character per pixel: (label, predicted).
PIXELS = {".": (0, False), "o": (0, True), "G": (1, False), "H": (1, True), "#": (255, False), "*": (255, True)}
T = len(SIOU_THRESHOLDS)  # 11: 0.25, 0.30, ..., 0.75


def picture(*rows):
    """(mask, label) drawn with PIXELS: . background, o false alarm, G missed and H found anomaly, # void,
    * void under a prediction."""
    cells = [[PIXELS[c] for c in row] for row in rows]
    label = np.array([[c[0] for c in row] for row in cells], np.uint8)
    mask = np.array([[c[1] for c in row] for row in cells], bool)
    return mask, label


def measure(*rows, min_pred=0, min_gt=0):
    mask, label = picture(*rows)
    return segment_metrics(*instances(mask, label, min_pred, min_gt))


def counts(first, n_first, second):
    """Per threshold: `first` at the lowest `n_first` thresholds, `second` at the others."""
    return [first] * n_first + [second] * (T - n_first)


def test_fully_covered_blob():
    # 4 ground-truth pixels, all predicted and nothing else: sIoU 4/4, PPV 4/4.
    r = measure(".....",
                ".HH..",
                ".HH..",
                ".....")
    assert r.siou_gt.tolist() == [1.0] and r.ppv.tolist() == [1.0] and r.siou_pred.tolist() == [1.0]
    assert r.size_gt.tolist() == [4] and r.size_pred.tolist() == [4]
    assert r.tp.tolist() == [1] * T and r.fn.tolist() == [0] * T and r.fp.tolist() == [0] * T


def test_half_covered_blob():
    # 8 ground-truth pixels, 4 predicted: sIoU 4/8 = 0.5, a hit up to t = 0.5 (6 thresholds), a miss above.
    # The prediction lies wholly on the object: PPV 4/4 = 1 (never a false positive); its sIoU_pred is
    # 4 / (4 + the 4 object pixels it misses) = 0.5.
    r = measure("......",
                ".HHGG.",
                ".HHGG.",
                "......")
    assert r.siou_gt.tolist() == [0.5] and r.ppv.tolist() == [1.0] and r.siou_pred.tolist() == [0.5]
    assert r.tp.tolist() == counts(1, 6, 0) and r.fn.tolist() == counts(0, 6, 1) and r.fp.tolist() == [0] * T


def test_prediction_spilling_onto_background():
    # 4 object pixels found, 4 background pixels predicted with them: sIoU 4/8, PPV 4/8; above 0.5 the
    # object is missed and the prediction is a false positive.
    r = measure("HHoo",
                "HHoo")
    assert r.siou_gt.tolist() == [0.5] and r.ppv.tolist() == [0.5]
    assert r.tp.tolist() == counts(1, 6, 0) and r.fp.tolist() == counts(0, 6, 1)


def test_one_prediction_over_two_objects_scores_each_object_alone():
    # Objects A (columns 0-1) and B (3-4), 4 pixels each; one prediction of 10 pixels joins them over the
    # background column. For A the union leaves out the prediction's pixels on B: 4 + 2 background pixels,
    # so sIoU 4/6 (unadjusted it would be 4/10); the same for B. PPV = 8/10. Hits up to 0.65 (9 thresholds).
    r = measure("HHoHH",
                "HHoHH")
    assert r.siou_gt.tolist() == [4 / 6, 4 / 6] and r.ppv.tolist() == [0.8] and r.siou_pred.tolist() == [0.8]
    assert r.tp.tolist() == counts(2, 9, 0) and r.fn.tolist() == counts(0, 9, 2) and r.fp.tolist() == [0] * T


def test_false_positive_blob_counts_at_every_threshold():
    # The object is found (sIoU 1); the second prediction touches no object: PPV 0 < every threshold.
    r = measure("HH..oo",
                "HH..oo")
    assert r.siou_gt.tolist() == [1.0] and r.ppv.tolist() == [1.0, 0.0] and r.siou_pred.tolist() == [1.0, 0.0]
    assert r.tp.tolist() == [1] * T and r.fp.tolist() == [1] * T


def test_void_swallows_predictions():
    # The prediction on void (*) is gone; the one across void is split into two parts of 2 and 1 pixels
    # (void is removed before labelling), each under min_pred=3, so no false positive remains.
    r = measure("HH..**",
                "HH.o*o",
                min_pred=3)
    assert r.siou_gt.tolist() == [1.0] and r.size_pred.tolist() == [4] and r.fp.tolist() == [0] * T
    mask, label = picture("oo*o")
    gt, pred = instances(mask, label)
    assert gt.tolist() == [0, 0, 0] and pred.tolist() == [1, 1, 2]  # the void pixel is outside the region


def test_small_object_becomes_void():
    # min_gt=3: the 2-pixel object is void, neither hit nor miss, and the prediction on it is ignored. The
    # 8-pixel object is missed (sIoU 0 at every threshold); no prediction remains, so no false positive.
    r = measure("GGGG..",
                "GGGG..",
                "......",
                "HH....",
                min_gt=3)
    assert r.siou_gt.tolist() == [0.0] and r.size_gt.tolist() == [8] and r.ppv.size == 0
    assert r.tp.tolist() == [0] * T and r.fn.tolist() == [1] * T and r.fp.tolist() == [0] * T
    # A prediction reaching from the small object onto background keeps its background pixel: its size (3)
    # passes min_pred=3 before the object turns void, and the pixel left is a false positive (PPV 0).
    r = measure("GGGG..",
                "GGGG..",
                "......",
                "HHo...",
                min_pred=3, min_gt=3)
    assert r.size_pred.tolist() == [1] and r.ppv.tolist() == [0.0] and r.fp.tolist() == [1] * T


def test_small_background_becomes_void_like_a_small_object():
    # The benchmark's size rule also visits the background as component 0: with 1 pixel not labelled 1 and
    # min_gt=2, the background is void too. The prediction's background pixel then drops out: sIoU 5/5,
    # PPV 5/5 (with a background of 2 or more pixels it would be 5/6 for both).
    r = measure("HHH",
                "HHo",
                min_gt=2)
    assert r.siou_gt.tolist() == [1.0] and r.ppv.tolist() == [1.0] and r.size_pred.tolist() == [5]
    r = measure("HHH",
                "HHo",
                min_gt=1)
    assert r.siou_gt.tolist() == [5 / 6] and r.ppv.tolist() == [5 / 6]


def test_small_predictions_are_removed():
    # min_pred=3: the 2-pixel false alarm goes, the 3-pixel one stays (fp 1); the object is found by a
    # 4-pixel prediction.
    r = measure("HH.oo.ooo",
                "HH.......",
                min_pred=3)
    assert r.size_pred.tolist() == [4, 3] and r.fp.tolist() == [1] * T


def test_diagonal_pixels_are_one_component():
    # 8-connectivity: the three diagonal pixels are one object and one prediction (4-connectivity: three).
    r = measure("H...",
                ".H..",
                "..H.")
    assert r.size_gt.tolist() == [3] and r.size_pred.tolist() == [3] and r.siou_gt.tolist() == [1.0]


def test_sIoU_of_exactly_three_fifths_misses_at_0_6():
    # 3 of 5 object pixels found: sIoU 3/5 = 0.6, but the benchmark's 0.6 is linspace's 0.6000000000000001,
    # so the object is a hit at 0.25 ... 0.55 (7 thresholds) and a miss from "0.6" on.
    r = measure("HHHGG")
    assert r.siou_gt.tolist() == [0.6] and SIOU_THRESHOLDS[7] > 0.6
    assert r.tp.tolist() == counts(1, 7, 0)


def test_empty_frames():
    for rows in (["...", "..."], ["###", "#*#"]):
        r = measure(*rows)
        assert r.siou_gt.size == r.ppv.size == r.siou_pred.size == 0
        assert r.tp.tolist() == r.fn.tolist() == r.fp.tolist() == [0] * T
    tally = ComponentTally()
    tally.add(measure("..."))
    s = tally.summary()
    assert s["sIoU_gt"] is None and s["PPV"] is None and s["sIoU_pred"] is None
    assert s["F1_25"] is None and s["F1_mean"] is None and s["tp_mean"] == 0.0 and s["frames"] == 1
    assert segment_metrics(np.zeros(0, np.int32), np.zeros(0, np.int32)).tp.tolist() == [0] * T


def test_only_false_positives():
    tally = ComponentTally()
    tally.add(measure("oo.."))
    s = tally.summary()
    # No object: F1 = 0 / (0 + 0 + 1) = 0 at every threshold, sIoU_gt undefined, PPV 0.
    assert s["F1_mean"] == 0.0 and s["F1_50"] == 0.0 and s["sIoU_gt"] is None and s["PPV"] == 0.0


def test_aggregation_over_two_frames():
    tally = ComponentTally()
    # Frame 1: two objects at sIoU 4/6, one prediction with PPV 0.8: tp 2 up to 0.65, then fn 2.
    tally.add(measure("HHoHH",
                      "HHoHH"))
    # Frame 2: one object found (sIoU 1) and one false alarm (PPV 0): tp 1, fp 1 at every threshold.
    tally.add(measure("HH..oo",
                      "HH..oo"))
    s = tally.summary()
    # Summed: at 0.25 ... 0.65 (9) tp 3, fn 0, fp 1: F1 = 6 / (6 + 0 + 1) = 6/7;
    #         at 0.70, 0.75 (2)  tp 1, fn 2, fp 1: F1 = 2 / (2 + 2 + 1) = 2/5.
    assert (s["tp_25"], s["fn_25"], s["fp_25"], s["F1_25"]) == (3, 0, 1, pytest.approx(6 / 7))
    assert (s["tp_50"], s["fn_50"], s["fp_50"], s["F1_50"]) == (3, 0, 1, pytest.approx(6 / 7))
    assert (s["tp_75"], s["fn_75"], s["fp_75"], s["F1_75"]) == (1, 2, 1, pytest.approx(2 / 5))
    # Means over the 11 thresholds: F1 (9 * 6/7 + 2 * 2/5) / 11 = 298/385; tp (9*3 + 2*1) / 11 = 29/11;
    # fn (2*2) / 11 = 4/11; fp 1.
    assert s["F1_mean"] == pytest.approx(298 / 385)
    assert s["tp_mean"] == pytest.approx(29 / 11) and s["fn_mean"] == pytest.approx(4 / 11) and s["fp_mean"] == 1
    # Means over components, not frames: sIoU_gt (4/6 + 4/6 + 1) / 3 = 7/9; PPV (0.8 + 1 + 0) / 3 = 0.6.
    assert s["sIoU_gt"] == pytest.approx(7 / 9) and s["PPV"] == pytest.approx(0.6)
    assert (s["gt_components"], s["pred_components"], s["frames"]) == (3, 3, 2)
    assert json.loads(json.dumps(s)) == s  # plain numbers only


def test_instances_from_score_predicts_above_the_threshold_only():
    label = np.array([[1, 1, 0, 0]], np.uint8)
    score = np.array([[0.5, 0.7, 0.5, 0.2]], np.float32)
    gt, pred = instances_from_score(score, label, 0.5)
    assert gt.tolist() == [1, 1, 0, 0] and pred.tolist() == [0, 1, 0, 0]


def test_track_sizes_and_errors():
    assert TRACK_SIZES == {"smiyc-anomaly": (500, 100), "smiyc-obstacle": (50, 10)}
    with pytest.raises(HypoodError, match="same HxW"):
        instances(np.zeros((2, 3), bool), np.zeros((3, 2), np.uint8))
    with pytest.raises(HypoodError, match="integers"):
        segment_metrics(np.zeros(3), np.zeros(3))
    tally = ComponentTally(SIOU_THRESHOLDS[:3])
    with pytest.raises(HypoodError, match="thresholds"):
        tally.add(measure("H"))


def test_components_are_numbered_by_their_first_pixel():
    # Numbered in 2x2 blocks, the component starting at (1, 0) would come before the one at (0, 2).
    binary = np.array([[0, 0, 1, 0],
                       [1, 0, 0, 0],
                       [0, 0, 0, 1]], bool)
    ids, count = _components(binary)
    assert count == 4 and ids[0, 2] == 1 and ids[1, 0] == 2 and ids[2, 3] == 3
    swapped = np.array([0, 2, 1, 3], np.int32)[ids]  # the fallback for another numbering
    assert np.array_equal(_raster_order(swapped, count), ids)


def test_best_f1_threshold_by_hand():
    neg, pos = np.array([0.1, 0.2, 0.5]), np.array([0.5, 0.6, 0.9])
    # score >= 0.9: F1 = 2*1 / (2*1 + 0 + 2) = 1/2;   >= 0.6: 4 / (4 + 0 + 1) = 4/5;
    # score >= 0.5: 6 / (6 + 1 + 0) = 6/7 (best);     >= 0.2: 6/8;  >= 0.1: 6/9.
    threshold, f1 = best_f1_threshold(neg, pos)
    assert f1 == pytest.approx(6 / 7) and 0.2 < threshold < 0.5
    assert np.count_nonzero(neg > threshold) == 1 and np.count_nonzero(pos > threshold) == 3
    # Predicting every pixel is best here: the threshold lies just under the lowest score.
    threshold, f1 = best_f1_threshold(np.array([0.0], np.float32), np.array([0.0, 0.0, 1.0], np.float32))
    assert f1 == pytest.approx(6 / 7) and threshold < 0.0 and np.float32(0.0) > np.float32(threshold)
    with pytest.raises(HypoodError, match="both"):
        best_f1_threshold(np.zeros(0), np.ones(3))


def pixel_f1(neg, pos, threshold, w_neg=1.0, w_pos=1.0):
    tp, fp = w_pos * np.count_nonzero(pos > threshold), w_neg * np.count_nonzero(neg > threshold)
    return 2 * tp / (2 * tp + fp + w_pos * pos.size - tp)


@pytest.mark.parametrize("seed", range(6))
def test_best_f1_threshold_is_the_f1_its_mask_gets(seed):
    rng = np.random.default_rng(seed)
    neg = np.round(rng.normal(size=300), 1).astype(np.float32)  # ties, within and across the classes
    pos = np.round(rng.normal(1.0, size=60), 1).astype(np.float32)
    w_neg = [1.0, 3.0][seed % 2]
    threshold, f1 = best_f1_threshold(neg, pos, weight_neg=w_neg)
    assert pixel_f1(neg, pos, threshold, w_neg) == pytest.approx(f1, abs=1e-12)
    candidates = np.unique(np.r_[neg, pos])
    best = max(pixel_f1(neg, pos, np.nextafter(v, np.float32(-np.inf)), w_neg) for v in candidates)
    assert f1 == pytest.approx(best, abs=1e-12)
    if w_neg == 3.0:  # a weight counts each pixel that many times
        assert best_f1_threshold(np.r_[neg, neg, neg], pos) == pytest.approx((threshold, f1))


# --- A literal reference, written from the definitions: whole-image passes per component. ---

def reference_components(binary):
    """8-connected flood fill; components numbered in the row-major order of their first pixel."""
    height, width = binary.shape
    ids = np.zeros(binary.shape, np.int64)
    count = 0
    for y, x in zip(*np.nonzero(binary)):
        if ids[y, x]:
            continue
        count += 1
        ids[y, x] = count
        todo = [(y, x)]
        while todo:
            cy, cx = todo.pop()
            for ny in range(max(cy - 1, 0), min(cy + 2, height)):
                for nx in range(max(cx - 1, 0), min(cx + 2, width)):
                    if binary[ny, nx] and not ids[ny, nx]:
                        ids[ny, nx] = count
                        todo.append((ny, nx))
    return ids, count


def reference_instances(mask, label, min_pred, min_gt):
    gt, n_gt = reference_components(label == 1)
    pred, n_pred = reference_components(mask & (label != 255))
    void = label == 255
    for k in range(n_pred + 1):
        if np.count_nonzero(pred == k) < min_pred:
            pred[pred == k] = 0
    for k in range(n_gt + 1):  # k = 0, the background, included, as in the benchmark
        if np.count_nonzero(gt == k) < min_gt:
            void = void | (gt == k)
    return gt[~void], pred[~void]


def reference_metrics(gt, pred, thresholds):
    def one_side(own_ids, other_ids):
        siou, ppv = [], []
        for k in np.unique(own_ids[own_ids > 0]):
            own = own_ids == k
            touching = np.unique(other_ids[own & (other_ids > 0)])
            on_touching = np.isin(other_ids, touching)
            intersection = np.count_nonzero(own & on_touching)
            elsewhere = on_touching & ~np.isin(own_ids, [0, k])  # on other components of this side
            union = np.count_nonzero(on_touching | own) - np.count_nonzero(elsewhere)
            siou.append(intersection / union)
            ppv.append(intersection / np.count_nonzero(own))
        return np.array(siou), np.array(ppv)

    siou_gt, _ = one_side(gt, pred)
    siou_pred, ppv = one_side(pred, gt)
    tp = [np.count_nonzero(siou_gt >= t) for t in thresholds]
    fn = [np.count_nonzero(siou_gt < t) for t in thresholds]
    fp = [np.count_nonzero(ppv < t) for t in thresholds]
    return siou_gt, ppv, siou_pred, tp, fn, fp


def random_frame(rng):
    height, width = rng.integers(1, 33, 2)
    label = np.zeros((height, width), np.uint8)
    mask = rng.random((height, width)) < rng.choice([0.0, 0.05, 0.3])  # scattered false alarms
    for _ in range(rng.integers(0, 6)):  # objects, each found in part, shifted or not at all
        y, x = rng.integers(0, height), rng.integers(0, width)
        h, w = rng.integers(1, 9, 2)
        label[y:y + h, x:x + w] = 1
        dy, dx = rng.integers(-2, 3, 2)
        if rng.random() < 0.7:
            mask[max(y + dy, 0):y + dy + h, max(x + dx, 0):x + dx + w] = True
    for _ in range(rng.integers(0, 3)):  # void rectangles
        y, x = rng.integers(0, height), rng.integers(0, width)
        label[y:y + rng.integers(1, 6), x:x + rng.integers(1, 6)] = 255
    return mask, label


def relabel(ids):
    """Ids renumbered 1, 2, ... in their order, 0 kept: the reference keeps the gaps of removed ids."""
    return np.unique(np.r_[0, ids], return_inverse=True)[1][1:]


def test_fast_version_equals_the_literal_reference():
    rng = np.random.default_rng(1234)
    frames = [random_frame(rng) for _ in range(300)]
    frames.append(((rng.random((90, 120)) < 0.45), (rng.random((90, 120)) < 0.4).astype(np.uint8)))
    components = 0
    for i, (mask, label) in enumerate(frames):
        min_pred, min_gt = [(0, 0), (2, 1), (3, 3), (6, 4), (50, 10)][i % 5]
        ref_gt, ref_pred = reference_instances(mask, label, min_pred, min_gt)
        gt, pred = instances(mask, label, min_pred, min_gt)
        assert np.array_equal(gt, relabel(ref_gt)) and np.array_equal(pred, relabel(ref_pred)), i
        fast = segment_metrics(gt, pred)
        siou_gt, ppv, siou_pred, tp, fn, fp = reference_metrics(ref_gt, ref_pred, SIOU_THRESHOLDS)
        assert np.array_equal(fast.siou_gt, siou_gt) and np.array_equal(fast.ppv, ppv), i
        assert np.array_equal(fast.siou_pred, siou_pred), i
        assert fast.tp.tolist() == tp and fast.fn.tolist() == fn and fast.fp.tolist() == fp, i
        components += siou_gt.size + ppv.size
    assert components > 1000  # the frames are not mostly empty


def test_given_ground_truth_instances_follow_the_same_rules():
    """With the connected components as the instances, everything equals the default path (ids kept as given,
    with the gaps of removed components); touching objects given apart are scored apart."""
    rng = np.random.default_rng(99)
    for i in range(150):
        mask, label = random_frame(rng)
        min_pred, min_gt = [(0, 0), (2, 1), (3, 3), (6, 4), (50, 10)][i % 5]
        components, _ = reference_components(label == 1)
        ref_gt, ref_pred = reference_instances(mask, label, min_pred, min_gt)
        gt, pred = instances(mask, label, min_pred, min_gt, gt_instances=components)
        assert np.array_equal(gt, ref_gt) and np.array_equal(pred, relabel(ref_pred)), i
    mask, label = picture("......",
                          ".HHGG.",
                          ".HHGG.",
                          "......")
    objects = np.zeros(label.shape, np.int64)
    objects[1:3, 1:3], objects[1:3, 3:5] = 7, 9
    gt, pred = instances(mask, label, gt_instances=objects)
    assert sorted(set(gt.tolist())) == [0, 7, 9]
    assert segment_metrics(gt, pred).siou_gt.tolist() == [1.0, 0.0]  # one component: [0.5]
    assert segment_metrics(*instances(mask, label)).siou_gt.tolist() == [0.5]
    with pytest.raises(HypoodError, match="exactly the pixels labelled 1"):
        instances(mask, label, gt_instances=np.where(objects == 9, 9, 0))
    with pytest.raises(HypoodError, match="integer ids"):
        instances(mask, label, gt_instances=objects.astype(float))
