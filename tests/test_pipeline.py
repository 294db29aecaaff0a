"""The frame pipeline on a real (tiny) model: sizes, scores, run-time changes, and `hypood run`."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hypood_ros.errors import ConfigError, FrameError
from hypood_ros.pipeline import FramePipeline, PipelineConfig
from hypood_ros.preprocess import preprocess
from hypood_ros.runtimes import load_backend
from hypood_ros.scores import ScoreInputs, SMLStats, compute_score


@pytest.fixture(scope="module")
def backend(tiny_checkpoint):
    return load_backend(tiny_checkpoint, input_hw=(56, 112))


def frame(h=75, w=130, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_outputs_have_camera_size_and_types(backend):
    result = FramePipeline(backend).process(frame())
    assert result.labels.shape == (75, 130) and result.labels.dtype == np.uint8 and result.labels.max() < 19
    assert result.color.shape == (75, 130, 3) and result.color.dtype == np.uint8
    assert result.score.shape == (75, 130) and result.score.dtype == np.float32
    assert result.mask.shape == (75, 130) and set(np.unique(result.mask)) <= {0, 255}
    assert result.overlay.shape == (75, 130, 3)


def test_network_resolution_is_the_registry_score_upsampled(backend):
    img = frame(64, 128)  # 4x the logit grid of the 56x112 network input
    for name in ("hyperspherical_llr", "energy", "uem_llr", "msp"):
        result = FramePipeline(backend, PipelineConfig(score=name, score_resolution="network")).process(img)
        with torch.no_grad():
            out = backend.run(preprocess([img], (56, 112), "cpu"))
        want = compute_score(name, ScoreInputs(out["seg_logits"], out["embedding"], backend.head, out["uem_logits"]))
        assert want.shape == (1, 16, 32)  # 4x the 4x8 patch grid
        want = F.interpolate(want[None], size=(64, 128), mode="bilinear", align_corners=False)[0, 0]
        np.testing.assert_array_equal(result.score, want.numpy())  # the values of the network order, exactly
        ids = out["seg_logits"].argmax(1)[0].numpy()
        np.testing.assert_array_equal(result.labels, ids.repeat(4, axis=0).repeat(4, axis=1))


def test_threshold_change_changes_the_mask(backend):
    pipeline = FramePipeline(backend, PipelineConfig(roi="none"))
    img = frame(seed=1)
    score = pipeline.process(img).score
    pipeline.update(threshold=float(np.median(score)))
    half = pipeline.process(img).mask
    assert 0.3 < (half > 0).mean() < 0.7
    pipeline.update(threshold=float(score.max()) + 1)
    assert (pipeline.process(img).mask == 0).all()


def test_invalid_config_is_rejected_and_keeps_the_old_one(backend):
    pipeline = FramePipeline(backend, PipelineConfig(threshold=0.25))
    for bad in ({"score": "nope"}, {"min_area": -1}, {"threshold": float("nan")}, {"eta": 100.0},
                {"outputs": {"labels", "hologram"}}, {"score": "sml"}, {"no_such_field": 1}):
        with pytest.raises(ConfigError):
            pipeline.update(**bad)
    assert pipeline.config.threshold == 0.25 and pipeline.config.score == "hyperspherical_llr"


def test_disabled_outputs_are_not_computed(backend):
    pipeline = FramePipeline(backend, PipelineConfig(outputs={"mask"}))
    result = pipeline.process(frame())
    assert result.mask is not None and result.labels is None and result.overlay is None and result.score is None


def test_sml_score_with_statistics(backend):
    stats = SMLStats(torch.zeros(19), torch.ones(19))
    pipeline = FramePipeline(backend, PipelineConfig(score="sml"), sml_stats=stats)
    result = pipeline.process(frame())
    assert np.isfinite(result.score).all()


def test_batch_equals_single_frames(backend):
    pipeline = FramePipeline(backend)
    frames = [frame(seed=s) for s in range(3)]
    batch = pipeline.process_batch(frames)
    for f, r in zip(frames, batch):
        np.testing.assert_allclose(r.score, pipeline.process(f).score, rtol=1e-4, atol=1e-4)


def test_bad_frames_raise_frame_error(backend):
    pipeline = FramePipeline(backend)
    with pytest.raises(FrameError):
        pipeline.process(np.zeros((10, 10), np.uint8))
    with pytest.raises(FrameError):
        pipeline.process(np.zeros((10, 10, 3), np.float32))


def make_image_folder(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (60, 100, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "street.png"), img)
    cv2.imwrite(str(folder / "street2.jpg"), img)
    cv2.imwrite(str(folder / "gray.png"), img[:, :, 0])
    cv2.imwrite(str(folder / "deep16.png"), (rng.random((40, 50, 3)) * 65535).astype(np.uint16))
    _ok, buf = cv2.imencode(".png", img)
    (folder / "truncated.png").write_bytes(buf.tobytes()[: len(buf) // 3])
    (folder / "notes.txt").write_text("not an image")
    cv2.imwrite(str(folder / "one_pixel.png"), img[:1, :1])
    cv2.imwrite(str(folder / "huge.png"), np.zeros((4000, 13000), np.uint8))
    return {"street", "street2", "gray", "deep16"}, {"truncated.png", "notes.txt", "one_pixel.png", "huge.png"}


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "hypood_ros.cli", "run", *map(str, args)],
                          check=False, capture_output=True, text=True, timeout=300)


def test_hypood_run_on_a_mixed_folder(tmp_path, tiny_checkpoint):
    good, bad = make_image_folder(tmp_path / "in")
    proc = run_cli("--model", tiny_checkpoint, "--images", tmp_path / "in", "--out", tmp_path / "out",
                   "--height", 56, "--width", 112, "--min-area", 5)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for stem in good:
        for suffix in ("labels.png", "color.png", "score.npy", "score.png", "mask.png", "overlay.png"):
            assert (tmp_path / "out" / f"{stem}_{suffix}").is_file(), (stem, suffix)
    labels = cv2.imread(str(tmp_path / "out" / "street_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (60, 100) and labels.dtype == np.uint8
    assert np.load(tmp_path / "out" / "deep16_score.npy").shape == (40, 50)
    skipped = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.startswith("skipped ")]
    assert sorted(line.split(":")[0][len("skipped "):] for line in skipped) == sorted(bad)
    assert not any(p.name.startswith(("truncated", "notes", "one_pixel", "huge")) for p in (tmp_path / "out").iterdir())
    assert "processed 4 of 8" in proc.stdout


def test_hypood_run_fails_when_nothing_is_usable(tmp_path, tiny_checkpoint):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"junk")
    proc = run_cli("--model", tiny_checkpoint, "--images", tmp_path / "in", "--out", tmp_path / "out",
                   "--height", 56, "--width", 112)
    assert proc.returncode == 1 and "processed 0 of 1" in proc.stdout
    proc = run_cli("--model", tmp_path / "missing.pt", "--images", tmp_path / "in", "--out", tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"hypood: error: --model {tmp_path / 'missing.pt'}: no such model file"


def test_run_options_reach_the_pipeline_config(tiny_checkpoint):
    import argparse

    from hypood_ros.cli.models import pipeline_from_args
    from hypood_ros.cli.parser import add_pipeline_options

    parser = argparse.ArgumentParser()
    add_pipeline_options(parser)
    args = parser.parse_args(["--model", str(tiny_checkpoint), "--height", "56", "--width", "112",
                              "--score", "energy", "--threshold", "-3.5", "--min-area", "7", "--opening", "3",
                              "--roi", "corridor", "--roi-margin", "4", "--roi-drop-known"])
    config = pipeline_from_args(args).config
    assert (config.score, config.threshold, config.min_area, config.opening) == ("energy", -3.5, 7, 3)
    assert (config.roi, config.roi_margin, config.roi_drop_known) == ("corridor", 4, True)


def test_hypood_run_takes_a_params_file_and_the_command_line_wins(tmp_path, tiny_checkpoint, backend):
    """`hypood run --params-file` reads the node's params YAML (the settings shipped beside a model): its mask
    is the pipeline's under the file's values, and an option given on the command line wins over the file."""
    import yaml

    from hypood_ros.images import read_image, write_image
    from hypood_ros.pipeline import FramePipeline, PipelineConfig

    (tmp_path / "in").mkdir()
    img = frame(60, 100, seed=5)
    write_image(tmp_path / "in" / "a.png", img)
    scores = FramePipeline(backend, PipelineConfig(score="msp", roi="none")).process(img).score
    params = tmp_path / "params.yaml"
    file_threshold = float(np.quantile(scores, 0.6))
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "score": "msp", "threshold": file_threshold, "roi": "none", "input_height": 56, "input_width": 112}}}))

    def mask(out, *extra):
        proc = run_cli("--model", tiny_checkpoint, "--images", tmp_path / "in", "--out", tmp_path / out,
                       "--params-file", params, *extra)
        assert proc.returncode == 0, proc.stderr
        return cv2.imread(str(tmp_path / out / "a_mask.png"), cv2.IMREAD_UNCHANGED)

    def expected(threshold):
        return FramePipeline(backend, PipelineConfig(score="msp", threshold=threshold, roi="none")).process(
            read_image(tmp_path / "in" / "a.png")).mask

    from_file = mask("file")
    assert 0 < (from_file > 0).mean() < 1
    np.testing.assert_array_equal(from_file, expected(file_threshold))
    given = float(np.quantile(scores, 0.9))
    np.testing.assert_array_equal(mask("option", "--threshold", given), expected(given))


def test_run_params_file_threshold_follows_the_nodes_rule(tmp_path, tiny_checkpoint):
    """The file's threshold is for the file's score: another --score takes its entry of the file's
    score_thresholds, as the node does, or needs its own --threshold (one line, not a silent wrong mask)."""
    from hypood_ros.cli import build_parser
    from hypood_ros.cli.models import pipeline_from_args
    from hypood_ros.errors import UsageError

    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("msp: 0.7\nenergy: -4.0\n")
    params = tmp_path / "params.yaml"

    def config(text, *argv):
        params.write_text("/**:\n  ros__parameters:\n" + "".join(f"    {line}\n" for line in text.split(";")))
        args = build_parser(["run"]).parse_args(["run", "--model", str(tiny_checkpoint), "--images", ".", "--out",
                                                 "o", "--height", "56", "--width", "112", "--params-file",
                                                 str(params), *argv])
        return pipeline_from_args(args).config

    assert config("score: msp;threshold: 0.5").threshold == 0.5
    assert config("score: msp;threshold: 0.5", "--threshold", "0.2").threshold == 0.2
    assert config(f"score: msp;score_thresholds: {thresholds}").threshold == 0.7
    got = config(f"score: msp;threshold: 0.5;score_thresholds: {thresholds}", "--score", "energy")
    assert (got.score, got.threshold) == ("energy", -4.0)
    with pytest.raises(UsageError, match="the threshold of --params-file .* is for score msp; give --threshold"):
        config("score: msp;threshold: 0.5", "--score", "entropy")
    assert config("score: msp;threshold: 0.5", "--score", "entropy", "--threshold", "0.3").threshold == 0.3
    # and for the file's local contrast: the score against its surroundings is another scale
    got = config("score: msp;threshold: 0.05;local_contrast: 0.15")
    assert (got.threshold, got.local_contrast) == (0.05, 0.15)
    with pytest.raises(UsageError, match="the threshold of --params-file .* is for local_contrast 0.15; give"):
        config("score: msp;threshold: 0.05;local_contrast: 0.15", "--local-contrast", "0")
    with pytest.raises(UsageError, match="the threshold of --params-file .* is for local_contrast 0.0; give"):
        config("score: msp;threshold: 0.5", "--local-contrast", "0.1")
    assert config("score: msp;threshold: 0.5", "--local-contrast", "0.1", "--threshold", "0.02").threshold == 0.02


def test_run_params_files_later_wins_and_errors_name_the_file(tmp_path, tiny_checkpoint):
    """--params-file repeats as the node's does (later files win), and an error about a value the file gave
    names the file, not only the option the user never typed."""
    from hypood_ros.cli import build_parser
    from hypood_ros.cli.models import pipeline_from_args
    from hypood_ros.errors import HypoodError

    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("/**:\n  ros__parameters:\n    score: msp\n    threshold: 0.5\n    opening: 3\n")
    second.write_text("hypood:\n  ros__parameters:\n    threshold: 0.6\n")

    def parse(*argv):
        return build_parser(["run"]).parse_args(["run", "--model", str(tiny_checkpoint), "--images", ".", "--out",
                                                 "o", "--height", "56", "--width", "112", *argv])

    config = pipeline_from_args(parse("--params-file", str(first), "--params-file", str(second))).config
    assert (config.score, config.threshold, config.opening) == ("msp", 0.6, 3)
    if torch.cuda.is_available():
        pytest.skip("fp16 is accepted where a CUDA device exists")
    second.write_text("hypood:\n  ros__parameters:\n    fp16: true\n")
    with pytest.raises(HypoodError) as caught:
        pipeline_from_args(parse("--params-file", str(first), "--params-file", str(second)))
    assert "--fp16" in str(caught.value) and f"the value of --params-file {first}, {second}" in str(caught.value)
    with pytest.raises(HypoodError) as caught:  # typed on the command line: no file named
        pipeline_from_args(parse("--fp16"))
    assert "params-file" not in str(caught.value)


def test_run_takes_the_model_of_its_params_file(tmp_path, tiny_checkpoint):
    """As the node does, `run` takes the params file's model: when --model is not given; --model wins; without
    either, one line says where a model may come from; a missing file named by the params file names it."""
    from hypood_ros.cli import build_parser
    from hypood_ros.cli.models import pipeline_from_args
    from hypood_ros.errors import UsageError

    params = tmp_path / "params.yaml"

    def args(text, *argv):
        params.write_text("/**:\n  ros__parameters:\n" + "".join(f"    {line}\n" for line in text.split(";")))
        return build_parser(["run"]).parse_args(["run", "--images", ".", "--out", "o", "--height", "56", "--width",
                                                 "112", "--params-file", str(params), *argv])

    given = args(f"model: {tiny_checkpoint};score: msp;threshold: 0.5")
    assert pipeline_from_args(given).config.score == "msp" and given.model == str(tiny_checkpoint)
    wins = args("model: nowhere.pt;score: msp;threshold: 0.5", "--model", str(tiny_checkpoint))
    pipeline_from_args(wins)
    assert wins.model == str(tiny_checkpoint)
    with pytest.raises(UsageError, match=r"--model is required, or model: in a --params-file \(none of"):
        pipeline_from_args(args("score: msp;threshold: 0.5"))
    with pytest.raises(UsageError) as caught:
        pipeline_from_args(args(f"model: {tmp_path / 'gone.pt'};score: msp;threshold: 0.5"))
    assert "gone.pt" in str(caught.value) and f"the value of --params-file {params}" in str(caught.value)
    no_file = build_parser(["run"]).parse_args(["run", "--images", ".", "--out", "o"])
    with pytest.raises(UsageError, match=r"--model is required, or model: in a --params-file$"):
        pipeline_from_args(no_file)
