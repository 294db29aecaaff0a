"""Short real training runs on generated fixtures in the Cityscapes and COCO layouts."""
import csv
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from hypood_ros.errors import ConfigError, HypoodError
from hypood_ros.model import build_segmentor, load_checkpoint, save_checkpoint
from hypood_ros.training.anomaly_mix import instance_mask, load_instances, polygons_to_mask
from hypood_ros.training.cityscapes import find_pairs, normalize, read_label, val_pairs
from hypood_ros.training.config import load_config
from hypood_ros.training.losses import segmentation_loss
from hypood_ros.training.validate import evaluate_miou
from training_fixtures import make_cityscapes, make_coco, scene

SMALL = ["--set", "preset=tiny", "--set", "batch_size=2", "--set", "crop=[42,84]", "--set", "num_workers=0",
         "--set", "warmup_steps=3", "--set", "lr=0.003", "--set", "log_every=5", "--set", "scale=[0.75,1.25]",
         "--set", "val_window=[42,84]", "--set", "val_stride=[42,42]", "--no-progress"]


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory):
    return make_cityscapes(tmp_path_factory.mktemp("cityscapes"))


def hypood(*args, launcher=("-m", "hypood_ros.cli")):
    return subprocess.run([sys.executable, *launcher, *map(str, args)], capture_output=True, text=True, timeout=300)


def log_rows(run):
    with open(run / "log.csv") as f:
        return list(csv.DictReader(f))


def fixed_loss(model, root):
    """Cross-entropy of a model on the val images: the same data before and after training."""
    model.eval()
    with torch.no_grad():
        losses = [segmentation_loss(model(normalize(scene_rgb)[None]), torch.from_numpy(lab.astype(np.int64))[None],
                                    255) for scene_rgb, lab in (scene(i) for i in range(4))]
    return float(torch.stack(losses).mean())


@pytest.mark.slow
def test_segmentor_training_reduces_loss_and_resumes(tmp_path, cityscapes):
    torch.manual_seed(0)
    init = save_checkpoint(build_segmentor("tiny"), tmp_path / "init.pt")
    before = fixed_loss(load_checkpoint(init), cityscapes)
    run = tmp_path / "run"
    proc = hypood("train", "segmentor", "--data-root", cityscapes, "--init", init, "--out", run,
                  "--set", "steps=20", "--set", "ckpt_every=10", "--set", "val_every=20", *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert (run / "last.pt").is_file() and (run / "model.pt").is_file()
    after = fixed_loss(load_checkpoint(run / "model.pt"), cityscapes)
    assert after < 0.7 * before, (before, after)
    rows = log_rows(run)
    assert rows[-1]["step"] == "20" and rows[-1]["val_miou"]

    # The same folder again without --resume: refused before any work, the finished run left as it was.
    saved = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    proc = hypood("train", "segmentor", "--data-root", cityscapes, "--init", init, "--out", run,
                  "--set", "steps=20", *SMALL)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.splitlines() == [f"hypood: error: --out {run} already holds a training run (model.pt, last.pt, "
                                        "log.csv); pass --resume to continue it, or choose a new folder"]
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == saved

    proc = hypood("train", "segmentor", "--data-root", cityscapes, "--init", init, "--out", run, "--resume",
                  "--set", "steps=30", "--set", "val_every=0", *SMALL, "--set", "val_window=[56,84]")
    assert proc.returncode == 0, proc.stderr
    assert "resumed from" in proc.stderr and "at step 20" in proc.stderr
    steps = [int(r["step"]) for r in log_rows(run)]
    assert steps[-1] == 30 and steps.count(25) == 1  # continued, not restarted
    model = load_checkpoint(run / "model.pt")
    assert model.metadata["trained"]["head"] and model.metadata["steps"] == 30
    assert model.input_size == (56, 84)  # the validation window, not the crop (42x84): the network input it states
    assert evaluate_miou(model, val_pairs(cityscapes), (42, 84), (42, 42), "cpu") > 0.5


def test_uem_training_reduces_the_llr_loss(tmp_path, cityscapes):
    images, annotations = make_coco(tmp_path / "coco")
    torch.manual_seed(0)
    init = save_checkpoint(build_segmentor("tiny"), tmp_path / "seg.pt", metadata={"input_size": [28, 56]})
    run = tmp_path / "uem"
    proc = hypood("train", "uem", "--data-root", cityscapes, "--init", init, "--out", run, "--set", "steps=40",
                  "--set", f"coco_root={images}", "--set", f"coco_annotations={annotations}", "--set", "ood_prob=1.0",
                  "--set", "paste_scale=[0.3,0.6]", *SMALL)
    assert proc.returncode == 0, proc.stderr
    losses = [float(r["loss"]) for r in log_rows(run)]
    assert np.mean(losses[-2:]) < 0.6 * np.mean(losses[:2]), losses
    trained, start = load_checkpoint(run / "model.pt"), load_checkpoint(init)
    assert torch.equal(trained.head.weight, start.head.weight)  # the segmentor stays frozen
    assert not torch.equal(trained.uem.classifier.weight, start.uem.classifier.weight)
    assert trained.input_size == (28, 56)  # stage uem validates at no size: the segmentor's recorded one is kept


@pytest.mark.slow
def test_two_process_torchrun_on_cpu(tmp_path, cityscapes):
    run = tmp_path / "ddp"
    proc = hypood("--standalone", "--nproc_per_node=2", "--module", "hypood_ros.cli", "train", "segmentor",
                  "--data-root", cityscapes, "--out", run, *SMALL[:2], *SMALL[4:], "--set", "steps=4",
                  "--set", "batch_size=1",
                  "--set", "log_every=2", "--set", "val_every=0",
                  launcher=("-m", "torch.distributed.run"))
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.stdout.count("wrote") == 1
    assert [r["step"] for r in log_rows(run)] == ["2", "4"]
    assert load_checkpoint(run / "model.pt").metadata["steps"] == 4


@pytest.mark.slow
def test_progress_bar_only_on_a_terminal(tmp_path, cityscapes):
    """A redirected stderr gets no bar (no carriage returns) and stdout the periodic log lines; a terminal
    gets the bar."""
    from terminal import on_terminal

    args = ["train", "segmentor", "--data-root", cityscapes, *SMALL[:-1], "--set", "steps=2", "--set", "log_every=1",
            "--set", "val_every=0"]
    proc = hypood(*args, "--out", tmp_path / "logged")
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "train segmentor" not in proc.stderr, proc.stderr
    assert [line for line in proc.stdout.splitlines() if line.startswith("step ")][-1].startswith("step 2/2 loss ")

    returncode, drawn, stdout = on_terminal([*args, "--out", tmp_path / "shown"])
    assert returncode == 0, drawn
    assert b"\r" in drawn and b"train segmentor" in drawn and b"2/2" in drawn, drawn
    assert "step 2/2" not in stdout and stdout.strip() == f"wrote {tmp_path / 'shown' / 'model.pt'}"


@pytest.mark.slow
def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(tmp_path):
    """The first batch fails (a label map with ids out of range): one line, exit 1, and the run folder this
    command created is gone again, with its new parents; a folder that was there stays, empty."""
    data = make_cityscapes(tmp_path / "data", n_train=2, n_val=0)
    for label in (data / "gtFine" / "train").rglob("*_labelTrainIds.png"):
        cv2.imwrite(str(label), np.full((84, 168), 42, np.uint8))
    args = ["train", "segmentor", "--data-root", data, *SMALL, "--set", "steps=3", "--set", "val_every=0"]
    proc = hypood(*args, "--out", tmp_path / "new" / "run")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hypood: error: ") and "train ids [42] out of range" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    (tmp_path / "empty").mkdir()
    proc = hypood(*args, "--out", tmp_path / "empty")
    assert proc.returncode == 1 and list((tmp_path / "empty").iterdir()) == [], proc.stderr


def test_cityscapes_layout_and_label_conversion(tmp_path, cityscapes):
    pairs = find_pairs(cityscapes, "val")
    assert len(pairs) == 2 and pairs[0][1].name.endswith("_gtFine_labelIds.png")
    converted = read_label(pairs[0][1])
    rgb, train_ids = scene(100)
    np.testing.assert_array_equal(converted, train_ids)  # labelIds -> trainIds
    bad = tmp_path / "x_gtFine_labelTrainIds.png"
    cv2.imwrite(str(bad), np.full((4, 4), 42, np.uint8))
    with pytest.raises(HypoodError, match=r"train ids \[42\] out of range"):
        read_label(bad)
    broken = tmp_path / "broken"
    make_cityscapes(broken, n_train=1, n_val=0)
    next((broken / "gtFine" / "train").rglob("*.png")).unlink()
    with pytest.raises(HypoodError, match="no label for"):
        find_pairs(broken, "train")


def test_coco_polygons_and_compressed_rle_decode_to_the_same_object(tmp_path):
    images, annotations = make_coco(tmp_path)
    polygon, rle = load_instances(str(annotations), str(images))
    a, b = instance_mask(polygon), instance_mask(rle)
    assert a.shape == b.shape == (60, 80)
    assert (a != b).mean() < 0.02 and abs(int(b.sum()) - 1257) < 60  # a disc of radius 20
    assert polygons_to_mask([[0, 0, 9, 0, 9, 9, 0, 9]], 12, 12).sum() == 100


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown config keys \\['stepz'\\]"):
        load_config(None, ["stepz=3"])
    with pytest.raises(ConfigError, match="multiples of 14"):
        load_config(None, ["crop=[50,100]"])
    with pytest.raises(ConfigError, match="needs init"):
        load_config(None, [], stage="uem")
    with pytest.raises(ConfigError, match="unknown preset 'huge'; known: tiny"):
        load_config(None, ["preset=huge"])
    with pytest.raises(ConfigError, match=r"crop must be a list of two positive integers, got \['a', 'b'\]"):
        load_config(None, ["crop=[a,b]"])
    with pytest.raises(ConfigError, match="ckpt_every must be at least 1"):
        load_config(None, ["ckpt_every=0"])
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(None, ["scale=[1,"])
    assert load_config(None, ["lr=5e-4", "scale=[1,2]"]).scale == [1, 2]  # ints are numbers
