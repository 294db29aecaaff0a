"""`--params-file`: the node's params YAML as a command reads it, so that the settings shipped beside a model
(models/demo/params.yaml) mean the same to `hypood run`, `hypood eval` and the node."""
from __future__ import annotations

import argparse
from typing import Any, Dict, Iterable

from hypood_ros.cli.paths import existing_file


def params_file_values(value) -> Dict[str, Any]:
    """The node parameters the params YAML `value` gives, sections matched as ROS matches them for the node, each
    value checked as the node checks it at start; names that are no node parameter are noted in one line."""
    from hypood_ros.cli.console import note
    from hypood_ros.node.params_files import checked_values

    path = existing_file(value, "--params-file", (".yaml", ".yml"), "YAML file")
    values, unknown = checked_values(path, f"--params-file {path}")
    if unknown:
        note(f"note: --params-file {path}: ignored names that are not node parameters: {', '.join(unknown)}")
    return values


def apply_params_file(args: argparse.Namespace, names: Iterable[str]) -> Dict[str, Any]:
    """Each option of `names` not given on the command line (None) from --params-file, else the table's default;
    returns the file's values (empty without one)."""
    from hypood_ros.defaults import default

    values = params_file_values(args.params_file) if args.params_file else {}
    for name in names:
        if getattr(args, name) is None:
            setattr(args, name, values.get(name, default(name)))
    return values


def table_options(args: argparse.Namespace) -> list:
    """The parsed options that are node parameters (their dest is the table's name)."""
    from hypood_ros.defaults import BY_NAME

    return [name for name in vars(args) if name in BY_NAME]
