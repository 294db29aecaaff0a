"""`hypood run`: the frame pipeline over a folder of images, writing every output as files."""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Dict, List

import numpy as np

from hypood_ros.cli.parser import add_option, add_pipeline_options
from hypood_ros.cli.paths import Output, existing_file, existing_folder, model_file
from hypood_ros.errors import ConfigError, FrameError, UsageError

HELP = "run the pipeline on a folder of images and write every output as files"
#: Kept for callers of the earlier name.
add_pipeline_arguments = add_pipeline_options


def configure(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "--images", required=True, metavar="DIR",
               help="folder of input images; files that are not usable images are skipped with a note")
    add_pipeline_options(parser)
    add_option(parser, "--out", required=True, metavar="DIR",
               help="output folder (new or empty): NAME_labels.png, _color.png, _score.npy, _score.png, _mask.png, "
                    "_overlay.png per input")
    parser.set_defaults(func=run)


def input_size(args: argparse.Namespace, path=None, backend=None, engine=""):
    """The network input for --model and --input-height/--input-width (0 or not given: the size the checkpoint
    records, else the default), by the rule the node follows too; its note, if any, printed."""
    from hypood_ros.cli.console import note
    from hypood_ros.runtimes import resolve_input_size

    size = resolve_input_size(args.model if path is None else path, getattr(args, "input_height", None) or 0,
                              getattr(args, "input_width", None) or 0, backend=backend, engine=engine)
    if size.note:
        note(f"note: {size.note}")
    return size.hw


def check_fixed_size(args: argparse.Namespace, backend) -> None:
    """--input-height/--input-width set the size of a checkpoint's input; ONNX models and engines have theirs."""
    asked = {"--input-height": getattr(args, "input_height", None), "--input-width": getattr(args, "input_width", None)}
    fixed = dict(zip(asked, backend.input_shape[2:]))
    wrong = [f"{k} {v}" for k, v in asked.items() if v and v != fixed[k]]
    if backend.name != "torch" and wrong:
        raise UsageError(f"{args.model} has a fixed input size of {fixed['--input-height']}x{fixed['--input-width']}"
                         f" ({backend.name}); {' and '.join(wrong)} cannot change it (export the checkpoint again "
                         "with `hypood export --input-height H --input-width W`)")


def load_model(args: argparse.Namespace):
    """The backend for --model/--backend/--device and the input size, after cheap checks of each."""
    from hypood_ros.devices import check_device
    from hypood_ros.runtimes import backend_for_path, load_backend

    path = model_file(args.model, backend=args.backend)
    device = check_device(args.device)
    if args.fp16 and not device.startswith("cuda"):
        raise UsageError("--fp16 needs a CUDA device (--device cuda)")
    if args.fp16 and backend_for_path(path, args.backend or None) != "torch" and not getattr(args, "engine", ""):
        raise UsageError(f"--fp16 applies to checkpoints (.pt); {path.name} has the precision it was exported or "
                         "built with")
    engine = getattr(args, "engine", "")
    bf16 = getattr(args, "bf16", False)
    if bf16 and (args.fp16 or device != "cpu"):
        raise UsageError("--bf16 is a CPU option (torch autocast); on CUDA use --fp16")
    if bf16 and (engine or backend_for_path(path, args.backend or None) != "torch"):
        raise UsageError(f"--bf16 applies to checkpoints (.pt) on the torch backend; {engine or path.name} runs "
                         "in the precision it was exported or built with (int8: `hypood export --int8`)")
    size = input_size(args, path, args.backend or None, engine)
    if engine:  # an AOTInductor package of the checkpoint, built when missing or stale
        from hypood_ros.runtimes.engine_cache import load_or_build

        backend = load_or_build(path, engine, args.rebuild_engine, backend=args.backend or None, device=device,
                                input_hw=size, fp16=args.fp16)
    else:
        backend = load_backend(path, backend=args.backend or None, device=device, input_hw=size, fp16=args.fp16,
                               bf16=bf16)
    check_fixed_size(args, backend)
    return backend


def config_from_args(args: argparse.Namespace):
    from hypood_ros.pipeline import PIPELINE_FIELDS, PipelineConfig

    return PipelineConfig(**{name: getattr(args, name) for name in PIPELINE_FIELDS})


def sml_stats_from_args(args: argparse.Namespace):
    """The --sml-stats file, loaded; a missing file or one given for nothing is refused before any work."""
    from hypood_ros.scores import load_sml_stats

    if not args.sml_stats:
        return None
    return load_sml_stats(existing_file(args.sml_stats, "--sml-stats", (".json",), "JSON file"))


def pipeline_from_args(args: argparse.Namespace):
    """FramePipeline for the parsed options: configuration first (cheap, exit 2), then the model."""
    from hypood_ros.pipeline import FramePipeline
    from hypood_ros.scores import score_spec

    config = config_from_args(args)
    stats = sml_stats_from_args(args)
    if score_spec(config.score).needs_sml and stats is None:
        raise ConfigError(f"score {config.score!r} needs SML statistics: fit them with `hypood fit-sml` and pass "
                          "--sml-stats")
    ego = None
    if getattr(args, "ego_mask", ""):
        from hypood_ros.roi import load_ego_mask

        ego = load_ego_mask(existing_file(args.ego_mask, "--ego-mask", (), "image file"))
    return FramePipeline(load_model(args), config, sml_stats=stats, ego_mask=ego)


def image_files(value, option: str = "--images") -> List[Path]:
    """The visible files of an input folder, sorted; an empty folder is refused."""
    folder = existing_folder(value, option)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise UsageError(f"{option} {folder}: the folder has no files")
    return files


def output_names(files: List[Path]) -> Dict[Path, str]:
    """Output name per input: the stem, or the whole file name where two inputs share a stem (a.png, a.jpg)."""
    stems = Counter(p.stem for p in files)
    return {p: p.stem if stems[p.stem] == 1 else p.name for p in files}


def write_result(out: Path, stem: str, result) -> None:
    from hypood_ros.images import write_image
    from hypood_ros.visualize import heat_map

    write_image(out / f"{stem}_labels.png", result.labels)
    write_image(out / f"{stem}_color.png", result.color)
    np.save(out / f"{stem}_score.npy", result.score)
    write_image(out / f"{stem}_score.png", heat_map(result.score))
    write_image(out / f"{stem}_mask.png", result.mask)
    write_image(out / f"{stem}_overlay.png", result.overlay)


def run(args: argparse.Namespace) -> int:
    from hypood_ros.cli.console import note, progress
    from hypood_ros.images import read_image

    files = image_files(args.images)
    names = output_names(files)
    shared = sorted(p.name for p in files if names[p] == p.name and p.stem != p.name)
    out = Output(args.out, "--out", kind="folder")
    try:
        pipeline = pipeline_from_args(args)
        if shared:
            note(f"note: {', '.join(shared)} share a stem; their outputs are named after the whole file name")
        done = 0
        with progress(files, desc="hypood run", unit="img") as bar:
            for path in bar:
                try:
                    result = pipeline.process(read_image(path))
                except FrameError as exc:
                    note(f"skipped {path.name}: {exc}")
                    continue
                write_result(out.tmp, names[path], result)
                done += 1
    except BaseException:
        out.discard()
        raise
    if not done:
        out.discard()
        print(f"processed 0 of {len(files)} files; nothing written")
        return 1
    out.commit()
    print(f"processed {done} of {len(files)} files; outputs in {args.out}")
    return 0
