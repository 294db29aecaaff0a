"""The `hypood` command line against ordinary mistakes: one line, the right exit status, nothing left behind.

Every case is a whole command line run in its own process (see cli_harness.py). For each we check the
exit status (2: the command line cannot work; 1: the work failed), that stderr is exactly one line
`hypood: error: ...` with the expected words and no traceback, and that no output, temporary file or
folder was left anywhere: neither in the case's own folder nor beside the shared inputs.
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

SIZE = ["--input-height", "42", "--input-width", "56"]


def _variant(checkpoint: Path, out: Path, pickle_bytes: bytes) -> None:
    """A copy of a real checkpoint whose pickle is replaced: the safe loader then fails in its own way."""
    with zipfile.ZipFile(checkpoint) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            dst.writestr(info, pickle_bytes if info.filename.endswith("data.pkl") else src.read(info.filename))


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_checkpoint, tiny_model):
    """Shared inputs: models good and broken, image folders, files in the way of outputs."""
    w = tmp_path_factory.mktemp("world")
    models = w / "models"
    models.mkdir()
    shutil.copy(tiny_checkpoint, models / "tiny.pt")
    from hypood_ros.runtimes.export import export_onnx

    export_onnx(tiny_model, models / "tiny.onnx", 42, 56, verify=False)
    (models / "corrupt.pt").write_bytes((models / "tiny.pt").read_bytes()[:3000])
    torch.save({"format": "hypood_ros.segmentor", "x": Evil()}, models / "evil.pt")
    _variant(models / "tiny.pt", models / "keyerror.pt", b"\x80\x02h\x05.")  # memo lookup of a missing key
    _variant(models / "tiny.pt", models / "indexerror.pt", b"\x80\x02)Q.")  # persistent id of an empty tuple
    (models / "notes.txt").write_text("not a model\n")
    (models / "folder.pt").mkdir()
    (models / "junk.onnx").write_bytes(b"\x00junk" * 50)
    (models / "list.engine").write_bytes(b"\x00" * 64)
    (models / "list.engine.json").write_text("[1, 2, 3]\n")
    (models / "gone.engine.json").write_text("{}\n")  # its engine is missing
    (models / "packed").mkdir()  # a model folder, as models/demo/
    payload = torch.load(models / "tiny.pt", weights_only=True)
    payload["metadata"]["input_size"] = [30, 56]  # not multiples of 14
    torch.save(payload, models / "badsize.pt")
    shutil.copy(tiny_checkpoint, models / "packed" / "model.pt")
    images = w / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        cv2.imwrite(str(images / f"{name}.png"), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    (w / "empty").mkdir()
    (w / "junk").mkdir()
    (w / "junk" / "a.png").write_bytes(b"not a png")
    (w / "full").mkdir()
    (w / "full" / "keep.txt").write_text("someone's file\n")
    for name in ("existing.onnx", "existing.pt", "existing.yaml", "existing.json", "existing.engine", "plain.txt"):
        (w / name).write_text("in the way\n")
    (w / "bad_stats.json").write_text("{not json")
    (w / "stats.json").write_text(json.dumps({"mean": [0.0] * 19, "std": [1.0] * 19}))
    (w / "bag").mkdir()
    (w / "bag" / "metadata.yaml").write_text("not really a bag\n")
    (w / "cityscapes").mkdir()
    (w / "params_broken.yaml").write_text("/**:\n  ros__parameters: [\n")
    (w / "params_range.yaml").write_text("/**:\n  ros__parameters:\n    input_height: 5\n")
    (w / "params_text.yaml").write_text("/**:\n  ros__parameters:\n    threshold: high\n")
    (w / "params_score.yaml").write_text("/**:\n  ros__parameters:\n    score: magic\n")
    (w / "params_sml.yaml").write_text("/**:\n  ros__parameters:\n    score: sml\n    threshold: 1.0\n")
    return w


def tree(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


RUN = ["run", "--model", "{w}/models/tiny.pt", "--images", "{w}/images", *SIZE]
EXPORT = ["export", "--model", "{w}/models/tiny.pt", "--input-height", "42", "--input-width", "56"]
CALIB = ["calibrate", "--model", "{w}/models/tiny.pt", *SIZE]
FIT = ["fit-sml", "--model", "{w}/models/tiny.pt", *SIZE]
EVAL = ["eval", "--dataset", "fs-static", "--model", "{w}/models/tiny.pt", *SIZE]
CONVERT = ["convert", "--kind", "uem", "--model", "{w}/models/corrupt.pt"]
ENGINE = ["build-engine", "--model", "{w}/models/tiny.onnx"]
REPLAY = ["replay", "--bag", "{w}/bag", "--topic", "/camera/image"]
GEN_BAG = ["generate", "bag", "b6", "--count", "2"]
GEN_SMIYC = ["generate", "smiyc", "s", "--count", "2"]
GEN_CITY = ["generate", "cityscapes", "c", "--count", "2"]
NO_CUDA = not torch.cuda.is_available()

# (id, command line, exit status, words the one stderr line must contain)
CASES = [
    # --out in the way, or somewhere nothing can be written (checked before any work)
    ("run-out-is-file", RUN + ["--out", "{w}/plain.txt"], 2, "is a file; it must be a folder"),
    ("run-out-not-empty", RUN + ["--out", "{w}/full"], 2, "already exists and is not empty"),
    ("run-out-under-file", RUN + ["--out", "{w}/plain.txt/out"], 2, "plain.txt is a file, not a folder"),
    ("run-out-unwritable", RUN + ["--out", "/proc/hypood-nowhere/out"], 2, "cannot write there"),
    ("export-out-is-folder", EXPORT + ["--out", "{w}/full"], 2, "is a folder; give a file name"),
    ("export-out-exists", EXPORT + ["--out", "{w}/existing.onnx"], 2,
     "already exists; choose another name or pass --overwrite"),
    ("export-out-unwritable", EXPORT + ["--out", "/proc/hypood-nowhere/m.onnx"], 2, "cannot write there"),
    ("export-out-suffix", EXPORT + ["--out", "model.pt"], 2, "must end in .onnx"),
    ("export-out-trailing-slash", EXPORT + ["--out", "newdir/"], 2, "is a folder; give a file name"),
    ("convert-out-is-folder", CONVERT + ["--out", "{w}/full"], 2, "is a folder; give a file name"),
    ("convert-out-exists", CONVERT + ["--out", "{w}/existing.pt"], 2, "already exists"),
    ("convert-out-unwritable", CONVERT + ["--out", "/proc/hypood-nowhere/m.pt"], 2, "cannot write there"),
    ("eval-out-is-file", EVAL + ["--data-root", "{w}/empty", "--out", "{w}/plain.txt"], 2, "is a file; it must be"),
    ("calibrate-out-is-folder", CALIB + ["--images", "{w}/images", "--out", "{w}/full"], 2, "is a folder"),
    ("calibrate-out-exists", CALIB + ["--images", "{w}/images", "--out", "{w}/existing.yaml"], 2, "already exists"),
    ("calibrate-out-unwritable", CALIB + ["--images", "{w}/images", "--out", "/proc/hypood-nowhere/p.yaml"], 2,
     "cannot write there"),
    ("calibrate-out-suffix", CALIB + ["--images", "{w}/images", "--out", "params.json"], 2, "must end in .yaml"),
    ("fit-sml-out-is-folder", FIT + ["--images", "{w}/images", "--out", "{w}/full"], 2, "is a folder"),
    ("fit-sml-out-exists", FIT + ["--images", "{w}/images", "--out", "{w}/existing.json"], 2, "already exists"),
    ("fit-sml-out-unwritable", FIT + ["--images", "{w}/images", "--out", "/proc/hypood-nowhere/s.json"], 2,
     "cannot write there"),
    ("fit-sml-out-suffix", FIT + ["--images", "{w}/images", "--out", "stats.yaml"], 2, "must end in .json"),
    ("engine-out-is-folder", ENGINE + ["--out", "{w}/full"], 2, "is a folder"),
    ("engine-out-exists", ENGINE + ["--out", "{w}/existing.engine"], 2, "already exists"),
    ("engine-out-unwritable", ENGINE + ["--out", "/proc/hypood-nowhere/m.engine"], 2, "cannot write there"),
    ("engine-out-suffix", ENGINE + ["--out", "m.onnx"], 2, "must end in .engine or .plan"),
    ("replay-record-unwritable", REPLAY + ["--record", "/proc/hypood-nowhere/rec"], 2, "cannot write there"),
    ("replay-record-not-empty", REPLAY + ["--record", "{w}/full"], 2, "already exists and is not empty"),
    ("replay-record-is-file", REPLAY + ["--record", "{w}/plain.txt"], 2, "is a file"),
    # devices
    ("run-device-gpu", RUN + ["--device", "gpu", "--out", "o"], 2, "unknown device 'gpu'; use cuda"),
    ("run-device-gpu1", RUN + ["--device", "gpu:1", "--out", "o"], 2, "use cuda:1"),
    ("run-device-tpu", RUN + ["--device", "tpu", "--out", "o"], 2, "unknown device 'tpu'"),
    ("run-device-cuda-x", RUN + ["--device", "cuda:x", "--out", "o"], 2, "unknown device"),
    ("fit-sml-device-gpu", FIT + ["--images", "{w}/images", "--device", "gpu", "--out", "s.json"], 2, "use cuda"),
    ("eval-device-gpu", EVAL + ["--data-root", "{w}/empty", "--device", "gpu", "--out", "o"], 2, "use cuda"),
    *([("run-device-cuda-absent", RUN + ["--device", "cuda", "--out", "o"], 1, "no CUDA device is available")]
      if NO_CUDA else []),
    # numbers out of range
    ("export-batch-0", EXPORT + ["--batch", "0", "--out", "m.onnx"], 2, "--batch: must be at least 1, got 0"),
    ("export-batch-negative", EXPORT + ["--batch", "-1", "--out", "m.onnx"], 2, "--batch: must be at least 1"),
    ("export-batch-text", EXPORT + ["--batch", "two", "--out", "m.onnx"], 2, "expected an integer, got 'two'"),
    ("export-height-not-14", EXPORT + ["--input-height", "50", "--out", "m.onnx"], 2,
     "--input-height: must be in [0, 4032] in steps of 14, got 50"),
    ("export-height-old-spelling", EXPORT + ["--height", "5000", "--out", "m.onnx"], 2,
     "--input-height: must be in [0, 4032] in steps of 14, got 5000"),
    ("eval-max-pixels-0", EVAL + ["--data-root", "{w}/empty", "--max-pixels", "0", "--out", "o"], 2,
     "--metric-pixels: must be at least 2"),
    ("eval-unknown-protocol", EVAL + ["--data-root", "{w}/empty", "--protocol", "tiles", "--out", "o"], 2,
     "--protocol: invalid choice: 'tiles'"),
    ("eval-heatmaps-negative", EVAL + ["--data-root", "{w}/empty", "--heatmaps", "-1", "--out", "o"], 2,
     "--heatmaps: must be at least 0"),
    ("replay-duration-negative", REPLAY + ["--duration", "-1"], 2, "--duration: must be in (0, inf], got -1"),
    ("replay-duration-zero", REPLAY + ["--duration", "0"], 2, "--duration: must be in (0"),
    ("replay-rate-zero", REPLAY + ["--rate", "0"], 2, "--rate: must be in (0"),
    ("replay-start-negative", REPLAY + ["--start", "-2"], 2, "--start: must be in [0"),
    ("replay-timeout-text", REPLAY + ["--frame-timeout", "soon"], 2, "expected a number, got 'soon'"),
    # calibrate chooses the threshold from raw scores: mask options would have no effect, so there are none
    ("calibrate-threshold", CALIB + ["--images", "{w}/images", "--threshold", "3", "--out", "p.yaml"], 2,
     "unrecognized arguments: --threshold 3"),
    ("calibrate-min-area", CALIB + ["--images", "{w}/images", "--min-area", "500", "--out", "p.yaml"], 2,
     "unrecognized arguments: --min-area 500"),
    ("calibrate-target-0", CALIB + ["--images", "{w}/images", "--target-fpr", "0", "--out", "p.yaml"], 2,
     "--target-fpr: must be in (0, 1)"),
    ("calibrate-target-1.5", CALIB + ["--images", "{w}/images", "--target-fpr", "1.5", "--out", "p.yaml"], 2,
     "--target-fpr: must be in (0, 1)"),
    ("calibrate-target-percent", CALIB + ["--images", "{w}/images", "--target-fpr", "1%", "--out", "p.yaml"], 2,
     "expected a number, got '1%'"),
    ("run-threshold-text", RUN + ["--threshold", "high", "--out", "o"], 2, "--threshold: expected a number"),
    ("run-threshold-nan", RUN + ["--threshold", "nan", "--out", "o"], 2,
     "--threshold: must be a finite number, got nan"),
    ("run-eta-range", RUN + ["--eta", "10", "--out", "o"], 2, "--eta: must be in [-5, 5], got 10.0"),
    ("run-lam-negative", RUN + ["--lam", "-1", "--out", "o"], 2, "--lam: must be in [0, 100], got -1.0"),
    ("run-delta-range", RUN + ["--delta", "2", "--out", "o"], 2, "--delta: must be in [0, 1]"),
    ("run-min-area-negative", RUN + ["--min-area", "-5", "--out", "o"], 2, "--min-area: must be in"),
    ("run-opening-float", RUN + ["--opening", "2.5", "--out", "o"], 2, "--opening: expected an integer"),
    ("run-roi-margin-negative", RUN + ["--roi-margin", "-1", "--out", "o"], 2, "--roi-margin: must be in [0, 100]"),
    ("run-height-negative", RUN + ["--input-height", "-14", "--out", "o"], 2, "--input-height: must be in [0, 4032]"),
    ("run-width-not-14", RUN + ["--input-width", "50", "--out", "o"], 2,
     "--input-width: must be in [0, 4032] in steps of 14, got 50"),
    ("run-fp16-on-cpu", RUN + ["--fp16", "--out", "o"], 2, "--fp16 needs a CUDA device"),
    ("run-overlay-alpha-range", RUN + ["--overlay-alpha", "1.5", "--out", "o"], 2,
     "--overlay-alpha: must be in [0, 1]"),
    ("run-pixel-limit-0", RUN + ["--max-image-pixels", "0", "--out", "o"], 2, "--max-image-pixels: must be at least"),
    ("engine-workspace-0", ENGINE + ["--workspace", "0", "--out", "m.engine"], 2, "--workspace: must be in (0"),
    # names that do not exist
    ("run-unknown-score", RUN + ["--score", "magic", "--out", "o"], 2,
     "argument --score: must be one of 'msp', 'entropy',"),
    ("run-unknown-resolution", RUN + ["--score-resolution", "full", "--out", "o"], 2,
     "--score-resolution: must be one of 'image', 'network', got 'full'"),
    ("run-unknown-backend", RUN + ["--backend", "tflite", "--out", "o"], 2,
     "--backend: must be one of '', 'torch', 'onnxruntime', 'tensorrt', 'aoti', got 'tflite'"),
    ("eval-unknown-scores", EVAL + ["--data-root", "{w}/empty", "--scores", "energy,magic", "--out", "o"], 2,
     "unknown score 'magic'"),
    ("eval-unknown-mask-score", EVAL + ["--data-root", "{w}/empty", "--mask-score", "magic", "--out", "o"], 2,
     "argument --mask-score: must be one of 'msp', 'entropy',"),
    ("eval-roi-lane", EVAL + ["--data-root", "{w}/empty", "--roi", "lane", "--out", "o"], 2,
     "argument --roi: must be one of 'none', 'road', 'corridor', 'road_corridor', got 'lane'"),
    ("eval-roi-margin-negative", EVAL + ["--data-root", "{w}/empty", "--roi-margin", "-2", "--out", "o"], 2,
     "--roi-margin: must be in [0, 100], got -2"),
    ("eval-threshold-text", EVAL + ["--data-root", "{w}/empty", "--threshold", "high", "--out", "o"], 2,
     "--threshold: expected a number, got 'high'"),
    ("eval-mask-option-without-mask", EVAL + ["--data-root", "{w}/empty", "--no-mask-metrics", "--min-area", "50",
                                              "--out", "o"], 2,
     "--min-area applies to the mask metrics, which --no-mask-metrics turns off"),
    ("eval-mask-score-sml-without-stats", EVAL + ["--data-root", "{w}/empty", "--mask-score", "sml", "--out", "o"], 2,
     "mask score 'sml' needs SML statistics: fit them with `hypood fit-sml` and pass --sml-stats"),
    ("eval-params-mask-score-sml", EVAL + ["--data-root", "{w}/empty", "--params-file", "{w}/params_sml.yaml",
                                           "--scores", "energy", "--out", "o"], 2, "mask score 'sml' needs SML"),
    ("eval-unknown-dataset", ["eval", "--dataset", "cityscapes", "--data-root", "{w}/empty", "--model",
                              "{w}/models/tiny.pt", "--out", "o"], 2, "--dataset: invalid choice"),
    ("convert-unknown-kind", ["convert", "--kind", "timm", "--model", "{w}/models/tiny.pt", "--out", "o.pt"], 2,
     "--kind: invalid choice"),
    ("unknown-command", ["rnu"], 2, "invalid choice: 'rnu'"),
    ("no-command", [], 2, "required: COMMAND"),
    ("unknown-option", RUN + ["--out", "o", "--treshold", "1"], 2,
     "unrecognized arguments: --treshold 1 (see `hypood run --help`)"),
    ("missing-out", RUN, 2, "required: --out"),
    ("train-unknown-stage", ["train", "decoder"], 2, "invalid choice: 'decoder'"),
    ("engine-int8-no-images", ENGINE + ["--int8", "--out", "m.engine"], 2, "--int8 needs --calib-images"),
    ("engine-two-precisions", ENGINE + ["--fp16", "--int8", "--out", "m.engine"], 2, "not allowed with argument"),
    # input files and folders that are missing or of the wrong kind
    ("run-images-missing", ["run", "--model", "{w}/models/tiny.pt", "--images", "{w}/nowhere", "--out", "o"], 2,
     "--images {w}/nowhere: no such folder"),
    ("run-images-is-file", ["run", "--model", "{w}/models/tiny.pt", "--images", "{w}/plain.txt", "--out", "o"], 2,
     "is a file; it must be a folder"),
    ("run-images-empty", ["run", "--model", "{w}/models/tiny.pt", "--images", "{w}/empty", "--out", "o"], 2,
     "the folder has no files"),
    ("run-model-missing", ["run", "--model", "{w}/models/none.pt", "--images", "{w}/images", "--out", "o"], 2,
     "no such model file"),
    ("run-model-is-folder", ["run", "--model", "{w}/models/folder.pt", "--images", "{w}/images", "--out", "o"], 2,
     "is a folder; it must be a model file"),
    ("run-model-wrong-suffix", ["run", "--model", "{w}/models/notes.txt", "--images", "{w}/images", "--out", "o"],
     2, "the file name must end in .pt or .pth or .onnx"),
    ("run-model-truncated", ["run", "--model", "{w}/models/corrupt.pt", "--images", "{w}/images", "--out", "o"], 1,
     "not a readable PyTorch checkpoint"),
    ("run-model-pickle-code", ["run", "--model", "{w}/models/evil.pt", "--images", "{w}/images", "--out", "o"], 1,
     "refused by the safe loader"),
    ("run-model-keyerror", ["run", "--model", "{w}/models/keyerror.pt", "--images", "{w}/images", "--out", "o"], 1,
     "not a readable PyTorch checkpoint (corrupt or truncated?): KeyError"),
    ("run-model-indexerror", ["run", "--model", "{w}/models/indexerror.pt", "--images", "{w}/images", "--out", "o"],
     1, "not a readable PyTorch checkpoint (corrupt or truncated?): IndexError"),
    ("run-model-bad-input-size", ["run", "--model", "{w}/models/badsize.pt", "--images", "{w}/images", "--out", "o"],
     1, "badsize.pt: metadata input_size must be [height, width], two positive multiples of 14 (the patch size), "
        "got [30, 56]"),
    ("export-model-bad-input-size", ["export", "--model", "{w}/models/badsize.pt", "--out", "m.onnx"], 1,
     "badsize.pt: metadata input_size must be [height, width]"),
    ("calibrate-model-bad-input-size", ["calibrate", "--model", "{w}/models/badsize.pt", "--images", "{w}/images",
                                        "--out", "p.yaml"], 1, "metadata input_size must be [height, width]"),
    ("run-onnx-junk", ["run", "--model", "{w}/models/junk.onnx", "--images", "{w}/images", "--out", "o"], 1,
     "cannot load ONNX model"),
    ("run-onnx-size-fixed", ["run", "--model", "{w}/models/tiny.onnx", "--images", "{w}/images",
                             "--input-height", "28", "--out", "o"], 2, "has a fixed input size of 42x56"),
    ("run-engine-sidecar-list", ["run", "--model", "{w}/models/list.engine", "--images", "{w}/images", "--out", "o"],
     1, "the JSON is a list, not an object"),
    ("run-engine-missing", ["run", "--model", "{w}/models/gone.engine", "--images", "{w}/images", "--out", "o"], 2,
     "gone.engine: no such model file"),
    ("run-backend-mismatch", RUN + ["--backend", "onnxruntime", "--out", "o"], 1, "cannot load ONNX model"),
    ("run-sml-without-stats", RUN + ["--score", "sml", "--out", "o"], 2, "needs SML statistics"),
    ("run-sml-stats-missing", RUN + ["--score", "sml", "--sml-stats", "{w}/none.json", "--out", "o"], 2,
     "--sml-stats {w}/none.json: no such JSON file"),
    ("run-sml-stats-bad", RUN + ["--score", "sml", "--sml-stats", "{w}/bad_stats.json", "--out", "o"], 2,
     "cannot read SML statistics"),
    ("export-model-is-onnx", ["export", "--model", "{w}/models/tiny.onnx", "--out", "m.onnx"], 2,
     "the file name must end in .pt or .pth"),
    ("export-model-truncated", ["export", "--model", "{w}/models/corrupt.pt", "--out", "sub/dir/m.onnx"], 1,
     "not a readable PyTorch checkpoint"),
    ("convert-truncated", CONVERT + ["--out", "sub/o.pt"], 1, "corrupt.pt"),
    ("convert-old-spelling", ["convert", "--kind", "uem", "--input", "{w}/models/evil.pt", "--out", "o.pt"], 1,
     "refused by the safe loader"),
    ("convert-model-missing", ["convert", "--kind", "uem", "--model", "{w}/none.ckpt", "--out", "o.pt"], 2,
     "no such checkpoint file"),
    ("convert-dinov2-no-preset", ["convert", "--kind", "dinov2", "--model", "{w}/models/tiny.pt", "--out", "o.pt"],
     2, "--kind dinov2 needs --preset"),
    ("engine-onnx-missing", ["build-engine", "--model", "{w}/none.onnx", "--out", "m.engine"], 2,
     "no such ONNX file"),
    ("engine-onnx-positional", ["build-engine", "{w}/none.onnx", "--out", "m.engine"], 2, "no such ONNX file"),
    ("engine-not-onnx", ["build-engine", "--model", "{w}/models/tiny.pt", "--out", "m.engine"], 2,
     "the file name must end in .onnx"),
    ("engine-calib-missing", ENGINE + ["--int8", "--calib-images", "{w}/none", "--out", "m.engine"], 2,
     "--calib-images {w}/none: no such folder"),
    ("calibrate-bag-no-topic", ["calibrate", "--model", "{w}/models/tiny.pt", "--bag", "{w}/bag", "--out", "p.yaml"],
     2, "--bag needs --topic"),
    ("calibrate-bag-missing", CALIB + ["--bag", "{w}/nobag", "--topic", "/c", "--out", "p.yaml"], 2, "no such bag"),
    ("run-ego-mask-missing", RUN + ["--ego-mask", "{w}/bonnet.png", "--out", "o"], 2,
     "--ego-mask {w}/bonnet.png: no such image file"),
    ("calibrate-bag-and-images", CALIB + ["--bag", "{w}/bag", "--images", "{w}/images", "--out", "p.yaml"], 2,
     "not allowed with argument"),
    ("calibrate-no-source", CALIB + ["--out", "p.yaml"], 2, "one of the arguments --bag --images is required"),
    ("calibrate-topic-with-images", CALIB + ["--images", "{w}/images", "--topic", "/c", "--out", "p.yaml"], 2,
     "--topic applies to --bag only"),
    ("calibrate-junk-images", CALIB + ["--images", "{w}/junk", "--out", "p.yaml"], 1, "no usable frames in images"),
    ("calibrate-broken-bag", CALIB + ["--bag", "{w}/bag", "--topic", "/c", "--out", "p.yaml"], 1, "cannot read bag"),
    ("fit-sml-junk-images", FIT + ["--images", "{w}/junk", "--out", "s.json"], 1, "no usable frames in images"),
    ("eval-sml-without-stats", EVAL + ["--data-root", "{w}/empty", "--scores", "energy,sml", "--out", "o"], 2,
     "score 'sml' needs SML statistics: fit them with `hypood fit-sml`"),
    ("eval-root-missing", EVAL + ["--data-root", "{w}/nowhere", "--out", "o"], 2, "--data-root {w}/nowhere: no such"),
    ("eval-root-old-spelling", EVAL + ["--root", "{w}/nowhere", "--out", "o"], 2, "--data-root {w}/nowhere: no such"),
    ("eval-root-empty", EVAL + ["--data-root", "{w}/empty", "--out", "o"], 1, "Fishyscapes Static labels not found"),
    ("eval-params-missing", EVAL + ["--data-root", "{w}/empty", "--params-file", "{w}/none.yaml", "--out", "o"], 2,
     "--params-file {w}/none.yaml: no such YAML file"),
    ("eval-params-not-yaml", EVAL + ["--data-root", "{w}/empty", "--params-file", "{w}/plain.txt", "--out", "o"], 2,
     "the file name must end in .yaml"),
    ("eval-params-broken", EVAL + ["--data-root", "{w}/empty", "--params-file", "{w}/params_broken.yaml",
                                   "--out", "o"], 2, "cannot read params file"),
    ("eval-params-no-section", EVAL + ["--data-root", "{w}/empty", "--params-file", "{w}/existing.yaml",
                                       "--out", "o"], 2, "no ros__parameters section"),
    ("eval-params-range", EVAL + ["--data-root", "{w}/empty", "--params-file", "{w}/params_range.yaml",
                                  "--out", "o"], 2,
     "--params-file {w}/params_range.yaml: parameter input_height must be in [0, 4032] in steps of 14, got 5"),
    ("eval-params-text", EVAL + ["--data-root", "{w}/empty", "--params-file", "{w}/params_text.yaml", "--out", "o"],
     2, "parameter threshold must be float, got 'high'"),
    ("replay-bag-missing", ["replay", "--bag", "{w}/nobag", "--topic", "/c"], 2, "bag not found"),
    ("replay-bag-positional-missing", ["replay", "{w}/nobag", "--topic", "/c"], 2, "bag not found"),
    ("replay-no-bag", ["replay", "--topic", "/c"], 2, "required: --bag"),
    ("replay-launch-no-model", REPLAY + ["--launch-node"], 2, "--launch-node needs --model"),
    ("replay-model-no-launch", REPLAY + ["--model", "{w}/models/tiny.pt"], 2, "apply to --launch-node only"),
    ("replay-launch-model-missing", REPLAY + ["--launch-node", "--model", "{w}/none.pt"], 2, "no such model file"),
    ("train-no-data-root", ["train", "segmentor"], 2, "training needs the Cityscapes folder: pass --data-root"),
    ("train-data-root-missing", ["train", "segmentor", "--data-root", "{w}/nowhere"], 2, "no such folder"),
    ("train-data-root-layout", ["train", "segmentor", "--data-root", "{w}/cityscapes"], 2, "no leftImg8bit/ folder"),
    ("train-bad-override", ["train", "segmentor", "--set", "steps=many"], 2, "steps must be an integer, got 'many'"),
    ("train-bad-list", ["train", "segmentor", "--set", "crop=518"], 2, "crop must be a list, got 518"),
    ("train-override-no-equals", ["train", "segmentor", "--set", "steps"], 2, "is not key=value"),
    ("train-unknown-key", ["train", "segmentor", "--set", "speed=3"], 2, "unknown config keys ['speed']"),
    ("train-config-missing", ["train", "segmentor", "--config", "{w}/none.yaml"], 2, "no such YAML file"),
    ("train-uem-no-init", ["train", "uem", "--data-root", "{w}/cityscapes"], 2, "needs init"),
    # generate: values, options of another kind, destinations (the inputs in the way stay untouched)
    ("generate-fps-0", GEN_BAG + ["--fps", "0"], 2, "argument --fps: must be in (0, 1000], got 0"),
    ("generate-fps-negative", GEN_BAG + ["--fps", "-5"], 2, "argument --fps: must be in (0, 1000], got -5"),
    ("generate-speed-negative", GEN_BAG + ["--speed", "-1"], 2, "argument --speed: must be in [0, 100], got -1"),
    ("generate-topic-relative", GEN_BAG + ["--topic", "notatopic"], 2,
     "a bag's topic must be absolute (start with /), e.g. /notatopic"),
    ("generate-topic-double-slash", GEN_BAG + ["--topic", "/front//image"], 2,
     "'/front//image' is not a valid ROS topic name"),
    ("generate-topic-digit", GEN_BAG + ["--topic", "/front/1image"], 2, "is not a valid ROS topic name"),
    ("generate-topic-trailing-slash", GEN_BAG + ["--topic", "/front/"], 2, "is not a valid ROS topic name"),
    ("generate-topic-space", GEN_BAG + ["--topic", "/front image"], 2, "is not a valid ROS topic name"),
    ("generate-topic-camera-info", GEN_BAG + ["--topic", "/front/camera_info"], 2,
     "the camera_info name is taken by the bag's CameraInfo"),
    ("generate-count-0", GEN_SMIYC + ["--count", "0"], 2, "argument --count: must be at least 1, got 0"),
    ("generate-val-negative", GEN_CITY + ["--val", "-1"], 2, "argument --val: must be at least 0, got -1"),
    ("generate-seed-negative", GEN_SMIYC + ["--seed", "-1"], 2, "argument --seed: must be at least 0, got -1"),
    ("generate-size-huge", GEN_SMIYC + ["--size", "10000x10000"], 2,
     "10000x10000 is 100000000 pixels, above the limit of 50000000"),
    ("generate-size-one-side", GEN_SMIYC + ["--size", "240"], 2, "expected HEIGHTxWIDTH, e.g. 240x480, got '240'"),
    ("generate-size-small", GEN_SMIYC + ["--size", "16x480"], 2, "both sides must be at least 32, got 16x480"),
    ("generate-val-for-smiyc", GEN_SMIYC + ["--val", "2"], 2, "--val applies to cityscapes only, not to smiyc"),
    ("generate-fps-for-smiyc", GEN_SMIYC + ["--fps", "5"], 2, "--fps applies to bag only, not to smiyc"),
    ("generate-topic-for-cityscapes", GEN_CITY + ["--topic", "/a/b"], 2, "--topic applies to bag only"),
    ("generate-family-for-cityscapes", GEN_CITY + ["--family", "training"], 2,
     "--family applies to smiyc and bag only, not to cityscapes"),
    ("generate-unknown-family", GEN_SMIYC + ["--family", "animals"], 2, "--family: invalid choice: 'animals'"),
    ("generate-smiyc-without-anomalies", GEN_SMIYC + ["--family", "none"], 2,
     "--family none applies to bag only: an SMIYC dataset holds only frames with an anomaly in view"),
    ("generate-unknown-kind", ["generate", "coco", "o"], 2, "argument KIND: invalid choice: 'coco'"),
    ("generate-no-out", ["generate", "smiyc"], 2, "the following arguments are required: OUT"),
    ("generate-out-is-file", ["generate", "cityscapes", "{w}/plain.txt", "--count", "2"], 2,
     "output folder {w}/plain.txt is a file; it must be a folder (new or empty)"),
    ("generate-out-not-empty", ["generate", "smiyc", "{w}/full", "--count", "2"], 2,
     "output folder {w}/full already exists and is not empty; choose a new folder"),
    ("generate-out-has-other-layout", ["generate", "cityscapes", "{w}/bag", "--count", "2"], 2,
     "already exists and is not empty"),
    ("generate-out-under-file", ["generate", "smiyc", "{w}/plain.txt/s", "--count", "2"], 2,
     "plain.txt is a file, not a folder"),
    ("generate-out-unwritable", ["generate", "smiyc", "/proc/hypood-nowhere/s", "--count", "2"], 2,
     "cannot write there"),
    ("generate-bag-exists", ["generate", "bag", "{w}/bag", "--count", "2"], 2,
     "output bag {w}/bag already exists; a bag is written as a new folder"),
    ("generate-bag-empty-folder", ["generate", "bag", "{w}/empty", "--count", "2"], 2, "already exists"),
    ("generate-bag-unwritable", ["generate", "bag", "/proc/hypood-nowhere/b", "--count", "2"], 2,
     "cannot write there"),
    # demo: the model, the params file and the output folder are checked before any work
    ("demo-model-truncated", ["demo", "--out", "d5", "--model", "{w}/models/corrupt.pt"], 1,
     "corrupt.pt: not a readable PyTorch checkpoint (corrupt or truncated?)"),
    ("demo-model-pickle-code", ["demo", "--out", "d5", "--model", "{w}/models/evil.pt"], 1,
     "refused by the safe loader"),
    ("demo-model-folder", ["demo", "--model", "{w}/models/packed"], 2,
     "--model {w}/models/packed is a folder; give the checkpoint in it: --model {w}/models/packed/model.pt"),
    ("demo-model-empty-folder", ["demo", "--model", "{w}/models/folder.pt"], 2,
     "is a folder; it must be a checkpoint file (.pt), such as the shipped"),
    ("demo-model-missing", ["demo", "--model", "{w}/models/none.pt"], 2, "--model {w}/models/none.pt: no such model"),
    ("demo-model-onnx", ["demo", "--model", "{w}/models/tiny.onnx"], 2, "the file name must end in .pt or .pth"),
    ("demo-params-missing", ["demo", "--params-file", "{w}/none.yaml"], 2,
     "--params-file {w}/none.yaml: no such YAML file"),
    ("demo-params-not-yaml", ["demo", "--params-file", "{w}/plain.txt"], 2, "the file name must end in .yaml"),
    ("demo-params-broken", ["demo", "--params-file", "{w}/params_broken.yaml"], 2, "cannot read params file"),
    ("demo-params-no-section", ["demo", "--params-file", "{w}/existing.yaml"], 2, "no ros__parameters section"),
    ("demo-params-range", ["demo", "--params-file", "{w}/params_range.yaml"], 2,
     "params_range.yaml: parameter input_height must be in [0, 4032] in steps of 14, got 5"),
    ("demo-params-text", ["demo", "--params-file", "{w}/params_text.yaml"], 2,
     "parameter threshold must be float, got 'high'"),
    ("demo-params-score", ["demo", "--params-file", "{w}/params_score.yaml"], 2,
     "parameter score must be one of 'msp', 'entropy'"),
    ("demo-frames-0", ["demo", "--frames", "0"], 2, "argument --frames: must be at least 2, got 0"),
    ("demo-rate-0", ["demo", "--rate", "0"], 2, "argument --rate: must be in (0, inf], got 0"),
    ("demo-rate-text", ["demo", "--rate", "fast"], 2, "argument --rate: expected a number, got 'fast'"),
    ("demo-anomalies-0", ["demo", "--anomalies", "0"], 2, "argument --anomalies: must be at least 1, got 0"),
    ("demo-anomalies-many", ["demo", "--anomalies", "500"], 2, "argument --anomalies: must be at most 20, got 500"),
    ("demo-seed-negative", ["demo", "--seed", "-1"], 2, "argument --seed: must be at least 0, got -1"),
    ("demo-out-is-file", ["demo", "--out", "{w}/plain.txt"], 2, "--out {w}/plain.txt is a file; it must be a folder"),
    ("demo-out-not-a-demo", ["demo", "--out", "{w}/full"], 2,
     "--out {w}/full holds files that are not the demo's (keep.txt)"),
    ("demo-out-under-file", ["demo", "--out", "{w}/plain.txt/d"], 2, "plain.txt is a file, not a folder"),
    ("demo-out-unwritable", ["demo", "--out", "/proc/hypood-nowhere/d"], 2, "cannot write there"),
]


def test_cases_are_unique_and_many():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 100


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_mistake_gives_one_line_and_leaves_nothing(case, world, server, tmp_path):
    name, argv, code, words = case
    before = tree(world)
    argv = [a.replace("{w}", str(world)) for a in argv]
    result = server.run(argv, cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert result.code == code, (argv, result)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("hypood: error: "), lines[0]
    assert words.replace("{w}", str(world)) in lines[0], lines[0]
    assert "\x1b[" not in result.stderr
    assert tree(tmp_path) == [], "left behind: " + ", ".join(tree(tmp_path))
    assert tree(world) == before, "left beside the inputs: " + ", ".join(set(tree(world)) - set(before))


def test_shared_stems_keep_their_own_outputs(world, server, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    img = cv2.imread(str(world / "images" / "a.png"))
    cv2.imwrite(str(folder / "a.png"), img)
    cv2.imwrite(str(folder / "a.jpg"), img[:, ::-1])
    cv2.imwrite(str(folder / "b.png"), img)
    result = server.run(["run", "--model", world / "models" / "tiny.pt", "--images", folder, *SIZE, "--out",
                         tmp_path / "out"], cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "a.jpg, a.png share a stem" in result.stderr
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"a.png_labels.png", "a.jpg_labels.png", "b_labels.png"} <= names and "a_labels.png" not in names
    assert len(names) == 3 * 6
    # The same folder again: the finished output is not overwritten, and nothing is half-written beside it.
    again = server.run(["run", "--model", world / "models" / "tiny.pt", "--images", folder, "--out",
                        tmp_path / "out"], cwd=tmp_path)
    assert again.code == 2 and "already exists and is not empty" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]


def test_output_of_a_failed_run_is_removed_with_the_folders_it_made(world, server, tmp_path):
    """Nothing usable in the folder: exit 1, and neither the output folder nor its new parents remain."""
    result = server.run(["run", "--model", world / "models" / "tiny.pt", "--images", world / "junk", *SIZE,
                         "--out", tmp_path / "new" / "deeper" / "out"], cwd=tmp_path)
    assert result.code == 1 and "processed 0 of 1" in result.stdout
    assert tree(tmp_path) == []


def test_export_writes_through_a_temporary_name_and_overwrite_replaces(world, server, tmp_path):
    out = tmp_path / "models" / "m.onnx"
    args = ["export", "--model", world / "models" / "tiny.pt", "--height", "42", "--width", "56", "--out", out]
    assert server.run(args, cwd=tmp_path).code == 0
    first = out.stat().st_mtime_ns
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.onnx"]
    assert server.run(args, cwd=tmp_path).code == 2 and out.stat().st_mtime_ns == first
    assert server.run(args + ["--overwrite"], cwd=tmp_path).code == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.onnx"]


def test_build_engine_without_tensorrt_leaves_nothing(world, server, tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    result = server.run(["build-engine", world / "models" / "tiny.onnx", "--out", tmp_path / "e" / "m.engine"],
                        cwd=tmp_path)
    assert result.code == 1 and result.stderr.startswith("hypood: error: TensorRT is not installed")
    assert len(result.stderr.splitlines()) == 1 and tree(tmp_path) == []


def test_pixel_limit_is_one_option(world, server, tmp_path):
    """An image above the limit is skipped with the limit named; the option raises it for that command."""
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "wide.png"), np.zeros((40, 60, 3), np.uint8))
    args = ["run", "--model", world / "models" / "tiny.pt", "--images", folder, *SIZE]
    low = server.run(args + ["--max-image-pixels", "2000", "--out", tmp_path / "a"], cwd=tmp_path)
    assert low.code == 1 and "above the pixel limit of 2000" in low.stderr and "--max-image-pixels" in low.stderr
    ok = server.run(args + ["--max-image-pixels", "2400", "--out", tmp_path / "b"], cwd=tmp_path)
    assert ok.code == 0, ok.stderr


def test_version_and_help(server, tmp_path):
    from hypood_ros import __version__

    version = server.run(["--version"], cwd=tmp_path)
    assert version.code == 0 and version.stdout.strip() == f"hypood_ros {__version__}"
    for command in ("run", "eval", "replay", "build-engine", "train", "generate", "demo"):
        shown = server.run([command, "--help"], cwd=tmp_path)
        assert shown.code == 0 and shown.stderr == "" and "usage: hypood " + command in shown.stdout
        assert "Traceback" not in shown.stdout
        assert f"\n\nhypood {command}" in shown.stdout, shown.stdout  # the description under the usage


def test_command_list_shows_each_help_line_whole(server, tmp_path):
    """`hypood --help` gives every command its whole one-line help (wrapped, never cut)."""
    import importlib

    from hypood_ros.cli import COMMANDS

    shown = server.run(["--help"], cwd=tmp_path)
    assert shown.code == 0
    text = " ".join(shown.stdout.split())
    for name in COMMANDS:
        module = importlib.import_module(f"hypood_ros.cli.{name}")
        assert hasattr(module, "configure") and len(module.HELP) <= 100, name
        assert f"{name.replace('_', '-')} {module.HELP}" in text, name
        first = module.__doc__.strip().splitlines()[0]
        assert first.endswith("."), (name, first)  # a whole sentence: the command's --help shows it


def test_every_option_has_help_and_shows_its_default():
    import argparse

    from hypood_ros.cli import COMMANDS, build_parser
    from hypood_ros.cli.parser import HelpFormatter

    parser = build_parser(None)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert sorted(commands) == sorted(c.replace("_", "-") for c in COMMANDS)
    formatter = HelpFormatter("hypood")
    for name, sub in commands.items():
        for action in sub._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.option_strings)
            text = formatter._get_help_string(action)
            default = getattr(action, "shown_default", action.default)
            if action.option_strings and action.nargs != 0 and default not in (None, "", []) and not action.required:
                assert "default" in text, (name, action.option_strings, text)
            if action.required:
                assert "(required)" in text


def test_pipeline_options_take_the_parameter_table():
    """Every CLI option named like a table parameter has the table's default; --score-resolution included."""
    import argparse

    from hypood_ros.cli import build_parser
    from hypood_ros.defaults import BY_NAME

    parser = build_parser(None)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    seen = set()
    for name, sub in commands.items():
        for action in sub._actions:
            if action.dest in BY_NAME and action.option_strings and action.dest != "model":
                seen.add((name, action.dest))
                assert getattr(action, "shown_default", action.default) == BY_NAME[action.dest].default, \
                    (name, action.dest)
    for command in ("run", "calibrate", "eval"):
        assert (command, "score_resolution") in seen
    mask = ("threshold", "min_area", "opening", "overlay_alpha")
    for command in ("run", "calibrate"):
        for param in ("score", "eta", "lam", "delta", "device", "fp16", "input_height", "input_width", "backend",
                      "sml_stats", "roi", "roi_margin", "roi_drop_known") + (mask if command == "run" else ()):
            assert (command, param) in seen, (command, param)
    assert not {("calibrate", param) for param in mask} & seen  # it computes the threshold from raw scores
    for param in ("score", "threshold", "min_area", "opening", "roi", "roi_margin", "roi_drop_known"):
        assert ("eval", param) in seen, param  # the obstacle mask it measures


def test_score_resolution_reaches_the_pipeline(tiny_checkpoint):
    from hypood_ros.cli import build_parser
    from hypood_ros.cli.models import pipeline_from_args

    args = build_parser(["run"]).parse_args(["run", "--model", str(tiny_checkpoint), "--images", ".", "--out", "o",
                                             *SIZE, "--score-resolution", "network", "--eta", "0.5"])
    config = pipeline_from_args(args).config
    assert config.score_resolution == "network" and config.eta == 0.5


@pytest.mark.parametrize("argv", [["--version"], ["run", "--device", "gpu"]])
def test_the_installed_entry_point_behaves_the_same(argv, tmp_path):
    """Two command lines through a real `python -m hypood_ros.cli` process, not the fork server."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "hypood_ros.cli", *argv], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**os.environ})
    if argv == ["--version"]:
        assert proc.returncode == 0 and proc.stdout.startswith("hypood_ros ")
    else:
        assert proc.returncode == 2 and proc.stderr.startswith("hypood: error: argument --device: unknown device")
        assert len(proc.stderr.splitlines()) == 1


def test_convert_writes_the_checkpoint_and_nothing_else(server, tmp_path):
    from hypood_ros.model import build_dinov2, load_checkpoint

    vit = build_dinov2("dinov2_vits14", embed_dim=64, depth=4, num_heads=2, img_size=224).eval()
    torch.save(vit.state_dict(), tmp_path / "dinov2_tiny_pretrain.pth")
    out = tmp_path / "models" / "init.pt"
    result = server.run(["convert", "--kind", "dinov2", "--model", tmp_path / "dinov2_tiny_pretrain.pth",
                         "--preset", "tiny", "--out", out], cwd=tmp_path)
    assert result.code == 0 and result.stdout.strip() == f"wrote {out}", result.stderr
    assert load_checkpoint(out).config["backbone"] == "dinov2_vits14"
    assert sorted(p.name for p in out.parent.iterdir()) == ["init.pt"]


def test_generate_writes_whole_folders_and_never_adds_to_them(server, tmp_path):
    """Each kind appears complete under its name; the same folder again is refused and left as it was."""
    small = ["--count", "2", "--size", "32x64"]
    smiyc = server.run(["generate", "smiyc", tmp_path / "new" / "s", *small], cwd=tmp_path)
    assert smiyc.code == 0, smiyc.stderr
    assert smiyc.stdout.startswith(f"wrote {tmp_path / 'new' / 's'}: ") and smiyc.stderr == ""  # no bar off a tty
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["s"]
    assert sorted(p.name for p in (tmp_path / "new" / "s").iterdir()) == ["dataset_AnomalyTrack",
                                                                         "dataset_ObstacleTrack"]
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "new" / "s").rglob("*")}
    for again in (["smiyc", *small], ["smiyc", "--count", "1", "--seed", "5"], ["cityscapes", *small]):
        result = server.run(["generate", again[0], tmp_path / "new" / "s", *again[1:]], cwd=tmp_path)
        assert result.code == 2 and "already exists and is not empty; choose a new folder" in result.stderr
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "new" / "s").rglob("*")} == before
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["s"]

    (tmp_path / "empty").mkdir()
    city = server.run(["generate", "cityscapes", tmp_path / "empty", *small, "--val", "1"], cwd=tmp_path)
    assert city.code == 0, city.stderr
    assert len(list((tmp_path / "empty" / "leftImg8bit" / "val" / "synth").iterdir())) == 1

    bag = server.run(["generate", "bag", tmp_path / "bags" / "drive", *small, "--fps", "5", "--topic", "/cam/image"],
                     cwd=tmp_path)
    assert bag.code == 0, bag.stderr
    assert sorted(p.name for p in (tmp_path / "bags").iterdir()) == ["drive"]
    assert "metadata.yaml" in {p.name for p in (tmp_path / "bags" / "drive").iterdir()}
    again = server.run(["generate", "bag", tmp_path / "bags" / "drive", *small], cwd=tmp_path)
    assert again.code == 2 and "already exists" in again.stderr
    assert sorted(p.name for p in (tmp_path / "bags").iterdir()) == ["drive"]


@pytest.mark.parametrize("kind", ["smiyc", "cityscapes", "bag"])
@pytest.mark.parametrize("failure", [KeyboardInterrupt, "error"])
def test_generate_that_fails_midway_leaves_nothing(kind, failure, tmp_path, monkeypatch):
    """A run stopped after some pictures were written: no output, no temporary name, no folder it made."""
    from hypood_ros.cli import main
    from hypood_ros.errors import HypoodError
    from hypood_ros.synthetic import scene, writers

    real, calls = scene.render_view, []

    def render_view(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt if failure is KeyboardInterrupt else HypoodError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(writers, "render_view", render_view)
    code = main(["generate", kind, str(tmp_path / "new" / "deeper" / "out"), "--count", "3", "--size", "32x64"])
    assert code == (130 if failure is KeyboardInterrupt else 1) and len(calls) == 2
    assert tree(tmp_path) == [], "left behind: " + ", ".join(tree(tmp_path))


def test_failed_demo_removes_what_it_wrote(tmp_path, monkeypatch, capsys):
    """The demo fails after generating its drive: neither the drive nor the anomaly frames stay, and an earlier
    demo's folder keeps only what was there besides the products (nothing), the folder itself kept."""
    pytest.importorskip("rclpy")
    import hypood_ros.dds
    from hypood_ros.cli import main
    from hypood_ros.errors import HypoodError

    def no_profile(*args, **kwargs):
        raise HypoodError("no DDS profile here")

    monkeypatch.setattr(hypood_ros.dds, "resolve_profile", no_profile)
    monkeypatch.setenv("ROS_DOMAIN_ID", "0")  # the demo sets both when unset; keep this process as it was
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    args = ["demo", "--frames", "2", "--anomalies", "1", "--no-progress", "--out"]
    assert main(args + [str(tmp_path / "new" / "d5")]) == 1
    assert "no DDS profile here" in capsys.readouterr().err
    assert tree(tmp_path) == [], "left behind: " + ", ".join(tree(tmp_path))

    earlier = tmp_path / "demo_out"  # a previous run's products are replaced, the folder stays
    (earlier / "drive").mkdir(parents=True)
    (earlier / "summary.json").write_text("{}\n")
    assert main(args + [str(earlier)]) == 1
    assert tree(tmp_path) == ["demo_out"]


# ---- hypood train: bad configuration values, and the run folder (an earlier run is never overwritten, a
# failed start creates no folder). Its own inputs, so that the shared world above keeps its layout. ----

@pytest.fixture(scope="module")
def train_world(tmp_path_factory):
    t = tmp_path_factory.mktemp("train-world")
    (t / "cityscapes" / "leftImg8bit").mkdir(parents=True)  # the layout, without images
    (t / "cityscapes" / "gtFine").mkdir()
    for folder, names in (("run", ("model.pt", "last.pt", "log.csv")), ("finished", ("model.pt", "log.csv")),
                          ("logged", ("log.csv",))):
        (t / folder).mkdir()
        for name in names:
            (t / folder / name).write_text(f"earlier run: {name}\n")
    (t / "list.yaml").write_text("- steps\n- 3\n")
    (t / "broken.yaml").write_text("steps: [1\n")
    return t


TRAIN = ["train", "segmentor", "--data-root", "{t}/cityscapes", "--set", "preset=tiny"]
TRAIN_CASES = [
    # an --out that already holds something: refused before any work, the earlier run untouched
    ("train-out-holds-run", TRAIN + ["--out", "{t}/run"], 2, "--out {t}/run already holds a training run "
     "(model.pt, last.pt, log.csv); pass --resume to continue it, or choose a new folder"),
    ("train-out-holds-results", TRAIN + ["--out", "{t}/finished"], 2,
     "already holds a training run (model.pt, log.csv) with no last.pt to resume from; choose a new folder"),
    ("train-out-holds-log", TRAIN + ["--out", "{t}/logged"], 2, "already holds a training run (log.csv)"),
    ("train-out-not-empty", TRAIN + ["--out", "{w}/full"], 2, "--out {w}/full already exists and is not empty"),
    ("train-out-is-file", TRAIN + ["--out", "{w}/plain.txt"], 2, "is a file; it must be a folder"),
    ("train-resume-nothing", TRAIN + ["--out", "{w}/full", "--resume"], 2, "--resume: no {w}/full/last.pt"),
    ("train-resume-corrupt-state", TRAIN + ["--out", "{t}/run", "--resume"], 1,
     "{t}/run/last.pt: not a readable PyTorch checkpoint"),
    # configuration values: one line, before the run folder exists
    ("train-unknown-preset", TRAIN + ["--set", "preset=huge", "--out", "o"], 2,
     "unknown preset 'huge'; known: tiny, vitb14_reg"),
    ("train-steps-zero", TRAIN + ["--set", "steps=0", "--out", "o"], 2, "steps must be at least 1, got 0"),
    ("train-steps-float", TRAIN + ["--set", "steps=2.5", "--out", "o"], 2, "steps must be an integer, got 2.5"),
    ("train-log-every-zero", TRAIN + ["--set", "log_every=0", "--out", "o"], 2, "log_every must be at least 1"),
    ("train-ckpt-every-zero", TRAIN + ["--set", "ckpt_every=0", "--out", "o"], 2, "ckpt_every must be at least 1"),
    ("train-workers-negative", TRAIN + ["--set", "num_workers=-1", "--out", "o"], 2, "num_workers must be at least 0"),
    ("train-lr-text", TRAIN + ["--set", "lr=fast", "--out", "o"], 2, "lr must be a number, got 'fast'"),
    ("train-lr-nan", TRAIN + ["--set", "lr=.nan", "--out", "o"], 2, "lr must be a finite number > 0, got nan"),
    ("train-lr-zero", TRAIN + ["--set", "lr=0", "--out", "o"], 2, "lr must be a finite number > 0, got 0"),
    ("train-flip-text", TRAIN + ["--set", "flip=maybe", "--out", "o"], 2, "flip must be true or false, got 'maybe'"),
    ("train-seed-negative", TRAIN + ["--set", "seed=-1", "--out", "o"], 2, "seed must be in [0, "),
    ("train-crop-words", TRAIN + ["--set", "crop=[a,b]", "--out", "o"], 2,
     "crop must be a list of two positive integers, got ['a', 'b']"),
    ("train-crop-three", TRAIN + ["--set", "crop=[14,14,14]", "--out", "o"], 2, "crop must be a list of two"),
    ("train-crop-not-14", TRAIN + ["--set", "crop=[50,100]", "--out", "o"], 2, "crop sides must be multiples of 14"),
    ("train-stride-zero", TRAIN + ["--set", "val_stride=[0,14]", "--out", "o"], 2, "val_stride must be a list of two"),
    ("train-scale-reversed", TRAIN + ["--set", "scale=[2,1]", "--out", "o"], 2, "scale must be [low, high]"),
    ("train-paste-scale-big", TRAIN + ["--set", "paste_scale=[0.5,3]", "--out", "o"], 2, "paste_scale must be"),
    ("train-ood-prob", TRAIN + ["--set", "ood_prob=2", "--out", "o"], 2, "ood_prob must be in [0, 1], got 2"),
    ("train-ood-label-class", TRAIN + ["--set", "ood_label=3", "--out", "o"], 2, "ood_label must be in [19, 255]"),
    ("train-labels-same", TRAIN + ["--set", "ood_label=255", "--out", "o"], 2,
     "ood_label and ignore_index must differ"),
    ("train-out-blank", TRAIN + ["--out", ""], 2, "out must name the run folder"),
    ("train-override-bad-yaml", TRAIN + ["--set", "crop=[42,", "--out", "o"], 2, "the value is not valid YAML"),
    ("train-config-list", TRAIN + ["--config", "{t}/list.yaml", "--out", "o"], 2,
     "must hold key: value fields of TrainConfig, got a list"),
    ("train-config-broken", TRAIN + ["--config", "{t}/broken.yaml", "--out", "o"], 2,
     "cannot read config {t}/broken.yaml: expected ',' or ']'"),
    # a start that fails (bad --init, no images): the same words as other commands, and no run folder
    ("train-init-truncated", TRAIN + ["--init", "{w}/models/corrupt.pt", "--out", "sub/o"], 1,
     "corrupt.pt: not a readable PyTorch checkpoint (corrupt or truncated?)"),
    ("train-init-pickle-code", TRAIN + ["--init", "{w}/models/evil.pt", "--out", "sub/o"], 1,
     "refused by the safe loader"),
    ("train-init-missing", TRAIN + ["--init", "{t}/none.pt", "--out", "o"], 2, "--init {t}/none.pt: no such"),
    ("train-uem-init-truncated", ["train", "uem", "--data-root", "{t}/cityscapes", "--init",
                                  "{w}/models/corrupt.pt", "--out", "sub/o"], 1, "not a readable PyTorch checkpoint"),
    ("train-no-images", TRAIN + ["--out", "sub/o"], 1, "Cityscapes images not found"),
]


@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_mistake_gives_one_line_and_leaves_nothing(case, world, train_world, server, tmp_path):
    name, argv, code, words = case
    before = {p: p.read_bytes() if p.is_file() else None for p in train_world.rglob("*")}
    argv = [a.replace("{t}", str(train_world)) for a in argv]
    test_mistake_gives_one_line_and_leaves_nothing((name, argv, code, words.replace("{t}", str(train_world))),
                                                   world, server, tmp_path)
    after = {p: p.read_bytes() if p.is_file() else None for p in train_world.rglob("*")}
    assert after == before, "the earlier runs or inputs changed"


def test_train_cases_are_unique():
    ids = [c[0] for c in TRAIN_CASES]
    assert len(ids) == len(set(ids)) and not set(ids) & {c[0] for c in CASES}


def test_replay_launch_node_takes_the_model_of_its_params_file(tmp_path, tiny_checkpoint):
    """As the node would: without --model, --launch-node starts the model that the --params-file names."""
    from hypood_ros.cli import build_parser
    from hypood_ros.cli.replay import check_args
    from hypood_ros.errors import UsageError

    bag = tmp_path / "bag"
    bag.mkdir()
    params = tmp_path / "front.yaml"
    params.write_text(f"hypood:\n  ros__parameters:\n    model: {tiny_checkpoint}\n    threshold: 0.5\n")
    args = build_parser(["replay"]).parse_args(["replay", str(bag), "--topic", "/camera/image", "--launch-node",
                                                "--params-file", str(params)])
    check_args(args)
    assert args.model == str(tiny_checkpoint)
    params.write_text("hypood:\n  ros__parameters:\n    threshold: 0.5\n")
    args = build_parser(["replay"]).parse_args(["replay", str(bag), "--topic", "/camera/image", "--launch-node",
                                                "--params-file", str(params)])
    with pytest.raises(UsageError, match="needs --model"):
        check_args(args)


def test_replay_reads_the_params_file_for_the_namespaced_node(tmp_path, tiny_checkpoint):
    """With --namespace the launched node is /<ns>/hypood: its section of the file names the model."""
    from hypood_ros.cli import build_parser
    from hypood_ros.cli.replay import check_args
    from hypood_ros.errors import HypoodError

    bag = tmp_path / "bag"
    bag.mkdir()
    params = tmp_path / "robot.yaml"
    params.write_text(f"/robot/hypood:\n  ros__parameters:\n    model: {tiny_checkpoint}\n")
    argv = ["replay", str(bag), "--topic", "/camera/image", "--launch-node", "--params-file", str(params)]
    args = build_parser(["replay"]).parse_args(argv + ["--namespace", "robot"])
    check_args(args)
    assert args.model == str(tiny_checkpoint)
    args = build_parser(["replay"]).parse_args(argv)  # the un-namespaced node gets nothing from this file
    with pytest.raises(HypoodError, match="no section for the node /hypood"):
        check_args(args)
    params.write_text("/robot/hypood:\n  ros__parameters:\n    model: nothere.pt\n")
    args = build_parser(["replay"]).parse_args(argv + ["--namespace", "robot"])
    with pytest.raises(HypoodError, match=r"^model \(from --params-file .*robot.yaml\) nothere.pt"):
        check_args(args)
