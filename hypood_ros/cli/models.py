"""What the commands share to turn their options into a model: the input size, the backend, the pipeline's
configuration, SML statistics and the frame pipeline, each checked before anything heavy loads."""
from __future__ import annotations

import argparse

from hypood_ros.cli.paths import existing_file, model_file
from hypood_ros.errors import ConfigError, HypoodError, UsageError


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
    """FramePipeline for the parsed options: configuration first (cheap, exit 2), then the model. A command with
    --params-file (run) takes every option not given from that file, else from the table."""
    from hypood_ros.cli.params_file import apply_params_file, given_files, name_the_file, table_options

    if hasattr(args, "params_file"):
        apply_params_file(args, table_options(args))
        if not args.model:
            files = " (none of --params-file names a model)" if given_files(args) else ""
            raise UsageError(f"--model is required, or model: in a --params-file{files}")
    try:
        return _pipeline(args)
    except HypoodError as exc:
        raise name_the_file(args, exc) from None


def _pipeline(args: argparse.Namespace):
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
