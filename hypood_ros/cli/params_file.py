"""`--params-file`: the node's params YAML as a command reads it, so that the settings shipped beside a model
(models/demo/params.yaml) mean the same to `hypood run`, `hypood eval`, `hypood replay` and the node."""
from __future__ import annotations

import argparse
import re
from typing import Any, Dict, Iterable, List

from hypood_ros.cli.paths import existing_file
from hypood_ros.errors import HypoodError, UsageError
from hypood_ros.node.params_files import NODE_FQN


def params_file_values(value, fqn: str = NODE_FQN, note_unknown: bool = True) -> Dict[str, Any]:
    """The node parameters the params YAML `value` gives the node named `fqn`, sections matched as ROS matches
    them, each value checked as the node checks it at start; names that are no node parameter are noted in
    one line (`note_unknown=False` where a launched node warns of them itself)."""
    from hypood_ros.cli.console import note
    from hypood_ros.node.params_files import checked_values

    path = existing_file(value, "--params-file", (".yaml", ".yml"), "YAML file")
    values, unknown = checked_values(path, f"--params-file {path}", fqn)
    if unknown and note_unknown:
        note(f"note: --params-file {path}: ignored names that are not node parameters: {', '.join(unknown)}")
    return values


def given_files(args: argparse.Namespace) -> List[str]:
    """The --params-file files of a command (one, or several where the option repeats, as the node's)."""
    value = getattr(args, "params_file", None)
    return list(value) if isinstance(value, (list, tuple)) else ([value] if value else [])


def apply_params_file(args: argparse.Namespace, names: Iterable[str]) -> Dict[str, Any]:
    """Each option of `names` not given on the command line (None) from the --params-file files (later ones win,
    as in ROS), else the table's default; returns the files' values (empty without one). The threshold follows
    the node's rule (`file_threshold`). `args.from_params_file` keeps the names the files gave."""
    from hypood_ros.defaults import default

    values: Dict[str, Any] = {}
    for path in given_files(args):
        values.update(params_file_values(path))
    names = list(names)
    taken = []
    if "threshold" in names and args.threshold is None:
        args.threshold = file_threshold(args, values)
        taken += ["threshold"] if "threshold" in values or values.get("score_thresholds") else []
    for name in names:
        if getattr(args, name) is None:
            setattr(args, name, values.get(name, default(name)))
            taken += [name] if name in values else []
    args.from_params_file = taken
    return values


def name_the_file(args: argparse.Namespace, exc: HypoodError) -> HypoodError:
    """`exc` with the params file named where its message speaks of an option whose value came from it (the
    user never typed `--fp16`: the file said `fp16: true`)."""
    text = str(exc)
    flags = [f"--{name.replace('_', '-')}" for name in getattr(args, "from_params_file", ())]
    named = [flag for flag in flags if re.search(re.escape(flag) + r"\b", text)]
    if not named:
        return exc
    files = ", ".join(given_files(args))
    return type(exc)(f"{text} ({', '.join(named)}: the value of --params-file {files})")


def file_threshold(args: argparse.Namespace, values: Dict[str, Any]):
    """The threshold when --threshold is not given, as the node takes it: the file's `score_thresholds` entry for
    the score in use, else the file's threshold, which is for the file's score only (a threshold means nothing
    on another score's scale: a --score that differs from it needs its --threshold) and the file's local contrast
    (likewise: the score against its surroundings is another scale), else the table's."""
    from hypood_ros.calibration import read_score_thresholds
    from hypood_ros.defaults import default

    file_score = values.get("score", default("score"))
    score = args.score if getattr(args, "score", None) is not None else file_score
    file_contrast = values.get("local_contrast", default("local_contrast"))
    given = getattr(args, "local_contrast", None)
    contrast = given if given is not None else file_contrast
    if values.get("score_thresholds"):
        thresholds = read_score_thresholds(values["score_thresholds"], contrast)
        if score in thresholds:
            return thresholds[score]
    if "threshold" in values:
        files = ", ".join(given_files(args))
        if score != file_score:
            raise UsageError(f"--score {score}: the threshold of --params-file {files} is for score {file_score}; "
                             f"give --threshold for {score}")
        if contrast != file_contrast:
            raise UsageError(f"--local-contrast {contrast}: the threshold of --params-file {files} is for "
                             f"local_contrast {file_contrast}; give --threshold for {contrast}")
        return values["threshold"]
    return default("threshold")


def table_options(args: argparse.Namespace) -> list:
    """The parsed options that are node parameters (their dest is the table's name)."""
    from hypood_ros.defaults import BY_NAME

    return [name for name in vars(args) if name in BY_NAME]
