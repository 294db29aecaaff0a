"""Parameter files as ROS reads them, without ROS: which sections address a node, and what it gets from them.

A file's top-level keys (or nested keys, joined with '/') name nodes, with `*` for one name token and `**`
for any; a bare name is in the root namespace. The node uses this to warn about a file of which nothing
applies to it (ROS ignores such a file silently), and the demo and `hypood eval --params-file` to read the
values the node will get.
"""
from __future__ import annotations

import difflib
import os
import re
from typing import Any, Dict, Iterator, List, Tuple

from hypood_ros.errors import ConfigError

NODE_FQN = "/hypood"  # the node's name, in the root namespace (as the demo and replay start it)
#: Parameters rclpy declares on every node; not ours to report.
RCLPY_PARAMETERS = ("use_sim_time", "start_type_description_service")


def params_files(argv: List[str]) -> List[str]:
    """The `--params-file PATH` arguments inside the --ros-args sections of a command line."""
    out, inside = [], False
    for i, arg in enumerate(argv):
        if arg == "--ros-args":
            inside = True
        elif arg == "--":
            inside = False
        elif inside and arg == "--params-file" and i + 1 < len(argv):
            out.append(argv[i + 1])
    return out


def section_applies(key: str, fqn: str) -> bool:
    """Whether a section name (`hypood`, `/ns/hypood`, `/**`, `/**/hypood`, `/*/hypood` ...) addresses the node
    whose fully qualified name is `fqn`."""
    key = key if key.startswith("/") else "/" + key
    pattern = "".join(".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part)
                      for part in re.split(r"(\*\*|\*)", key))
    return re.fullmatch(pattern.replace("/.*/", "(/.*)?/"), fqn) is not None


def sections(data: Any, prefix: str = "") -> Iterator[Tuple[str, Dict[str, Any]]]:
    """(node name, ros__parameters) of every section, in file order; nested node keys are joined with '/'."""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if not isinstance(value, dict):
            continue
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value.get("ros__parameters"), dict):
            yield name, value["ros__parameters"]
        else:
            yield from sections(value, name)


def read(path: str | os.PathLike) -> Any:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read params file {path}: {' '.join(str(exc).split())}") from None


def values_for(data: Any, fqn: str = NODE_FQN) -> Dict[str, Any]:
    """The parameters a node named `fqn` gets from a file: every section that addresses it, later ones winning."""
    out: Dict[str, Any] = {}
    for name, params in sections(data):
        if section_applies(name, fqn):
            out.update(params)
    return out


def foreign_files(argv: List[str], fqn: str) -> List[str]:
    """Warnings for parameter files of which no section addresses this node: ROS leaves them unused without
    a word (usually the node's name misspelled, e.g. `hypood_node:` for the node `hypood`)."""
    out = []
    for path in params_files(argv):
        try:
            data = read(path)
        except ConfigError:
            continue  # an unreadable file stops the node before this (hypood_node.init_ros)
        names = [name for name, _ in sections(data)]
        if names and not any(section_applies(name, fqn) for name in names):
            out.append(f"parameter file {path} has no section for this node ({fqn}), so none of its values apply; "
                       f"its sections: {', '.join(names)} (use '{fqn}:' or '/**:')")
    return out


def node_values(path: str | os.PathLike, fqn: str = NODE_FQN) -> Dict[str, Any]:
    """The parameters the node named `fqn` gets from the params YAML at `path`, by ROS's section rules;
    ConfigError for a file with no ros__parameters section, or none that addresses the node."""
    data = read(path)
    names = [name for name, _ in sections(data)]
    if not names:
        raise ConfigError(f"{path}: no ros__parameters section (a node params YAML: NODE: {{ros__parameters: ...}})")
    if not any(section_applies(name, fqn) for name in names):
        raise ConfigError(f"{path}: no section for the node {fqn} (sections: {', '.join(names)}); "
                          f"use '{fqn}:' or '/**:'")
    return values_for(data, fqn)


#: Parameters of earlier releases and what replaced them (named in the unknown-name warning).
REPLACED = {"road_gating": "roi (road_gating: true is roi: road)", "road_radius": "roi_margin (roi: road)"}


def unknown_names(names) -> List[str]:
    """Given names the table does not know, each with what replaced it or the closest known name."""
    from hypood_ros.defaults import BY_NAME

    known = list(BY_NAME)
    out = []
    for name in sorted(names):
        if name in BY_NAME or name in RCLPY_PARAMETERS or name.startswith("qos_overrides."):
            continue
        if name in REPLACED:
            out.append(f"{name} (replaced by {REPLACED[name]})")
            continue
        close = difflib.get_close_matches(name, known, n=1)
        out.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return out


def checked_values(path: str | os.PathLike, label: str = "",
                   fqn: str = NODE_FQN) -> Tuple[Dict[str, Any], List[str]]:
    """(the table's parameters the node named `fqn` gets from the file at `path`, each checked as the node checks
    it at start and in the table's type; the names the table does not know, as `unknown_names` gives them).
    A value the node would refuse is a ConfigError that starts with `label` (default: the path)."""
    from hypood_ros.defaults import BY_NAME, check_value

    given = node_values(path, fqn)
    values = {}
    for name, value in given.items():
        if name in BY_NAME:
            try:
                values[name] = check_value(BY_NAME[name], value)  # the node's own start-up check
            except ConfigError as exc:
                raise ConfigError(f"{label or path}: {exc}") from None
    return values, unknown_names(given)
