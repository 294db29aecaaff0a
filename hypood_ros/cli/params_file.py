"""`--params-file`: the node's params YAML as a command reads it, so that the settings shipped beside a model
(models/demo/params.yaml) mean the same to `hypood run`, `hypood eval`, `hypood replay` and the node."""
from __future__ import annotations

import argparse
from typing import Any, Dict, Iterable

from hypood_ros.cli.paths import existing_file
from hypood_ros.errors import UsageError
from hypood_ros.node.params_files import NODE_FQN


def params_file_values(value, fqn: str = NODE_FQN) -> Dict[str, Any]:
    """The node parameters the params YAML `value` gives the node named `fqn`, sections matched as ROS matches
    them, each value checked as the node checks it at start; names that are no node parameter are noted in
    one line."""
    from hypood_ros.cli.console import note
    from hypood_ros.node.params_files import checked_values

    path = existing_file(value, "--params-file", (".yaml", ".yml"), "YAML file")
    values, unknown = checked_values(path, f"--params-file {path}", fqn)
    if unknown:
        note(f"note: --params-file {path}: ignored names that are not node parameters: {', '.join(unknown)}")
    return values


def apply_params_file(args: argparse.Namespace, names: Iterable[str]) -> Dict[str, Any]:
    """Each option of `names` not given on the command line (None) from --params-file, else the table's default;
    returns the file's values (empty without one). The threshold follows the node's rule (`file_threshold`)."""
    from hypood_ros.defaults import default

    values = params_file_values(args.params_file) if args.params_file else {}
    names = list(names)
    if "threshold" in names and args.threshold is None:
        args.threshold = file_threshold(args, values)
    for name in names:
        if getattr(args, name) is None:
            setattr(args, name, values.get(name, default(name)))
    return values


def file_threshold(args: argparse.Namespace, values: Dict[str, Any]):
    """The threshold when --threshold is not given, as the node takes it: the file's `score_thresholds` entry for
    the score in use, else the file's threshold, which is for the file's score only (a threshold means nothing
    on another score's scale: a --score that differs from it needs its --threshold), else the table's."""
    from hypood_ros.calibration import read_score_thresholds
    from hypood_ros.defaults import default

    file_score = values.get("score", default("score"))
    score = args.score if getattr(args, "score", None) is not None else file_score
    if values.get("score_thresholds"):
        thresholds = read_score_thresholds(values["score_thresholds"])
        if score in thresholds:
            return thresholds[score]
    if "threshold" in values:
        if score != file_score:
            raise UsageError(f"--score {score}: the threshold of --params-file {args.params_file} is for score "
                             f"{file_score}; give --threshold for {score}")
        return values["threshold"]
    return default("threshold")


def table_options(args: argparse.Namespace) -> list:
    """The parsed options that are node parameters (their dest is the table's name)."""
    from hypood_ros.defaults import BY_NAME

    return [name for name in vars(args) if name in BY_NAME]
