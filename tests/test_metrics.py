"""OOD metrics against scikit-learn, with ties and void pixels."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from hypood_ros.errors import HypoodError
from hypood_ros.evaluation.metrics import PixelSample, ood_metrics


def sklearn_metrics(scores, labels):
    keep = labels != 255
    s, y = scores[keep], labels[keep]
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return {"AP": average_precision_score(y, s), "AUROC": roc_auc_score(y, s),
            "FPR95": fpr[np.searchsorted(tpr, 0.95, side="left")]}


@pytest.mark.parametrize("seed,tied", [(0, False), (1, False), (2, True), (3, True)])
def test_metrics_agree_with_sklearn(seed, tied):
    rng = np.random.default_rng(seed)
    n = 20_000
    labels = (rng.random(n) < 0.1).astype(np.uint8)
    scores = rng.normal(size=n) + 1.5 * labels
    if tied:
        scores = np.round(scores, 1)  # many equal scores across both classes
    labels[rng.random(n) < 0.2] = 255  # void pixels, ignored
    got, want = ood_metrics(scores, labels), sklearn_metrics(scores, labels)
    for key in want:
        assert abs(got[key] - want[key]) <= 1e-4, (key, got[key], want[key])


def test_sample_is_exact_under_capacity_and_close_above():
    rng = np.random.default_rng(5)
    chunks = []
    for _ in range(8):
        labels = (rng.random(5000) < 0.05).astype(np.uint8)
        chunks.append((rng.normal(size=5000) + 2 * labels, labels))
    scores = np.concatenate([c[0] for c in chunks])
    labels = np.concatenate([c[1] for c in chunks])
    exact = ood_metrics(scores, labels)
    big, small = PixelSample(capacity=10**6), PixelSample(capacity=8000)
    for s, y in chunks:
        big.add(s, y)
        small.add(s, y)
    assert big.metrics() == pytest.approx(exact, abs=1e-6)  # float32 storage
    approx = small.metrics()
    assert small.values[False].size == 4000
    for key in exact:
        assert abs(approx[key] - exact[key]) < 0.03, key


def test_bad_labels_and_degenerate_inputs():
    with pytest.raises(HypoodError, match="found \\[7\\]"):
        ood_metrics(np.zeros(4), np.array([0, 1, 7, 0], np.uint8))
    with pytest.raises(HypoodError, match="both OOD and in-distribution"):
        ood_metrics(np.zeros(4), np.zeros(4, np.uint8))
