"""Every place that states a parameter default agrees with the one table (hypood_ros/defaults.py).

Each place is one entry of SOURCES: a function returning {name: default} for the names it states.
Add the launch files' arguments here as a further entry.
"""
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from hypood_ros.defaults import BY_NAME, OUTPUTS, PARAMS, markdown_table
from hypood_ros.geometry import GridConfig
from hypood_ros.pipeline import PipelineConfig

REPO = Path(__file__).resolve().parents[1]


def pipeline_defaults():
    return {f.name: f.default for f in dataclasses.fields(PipelineConfig) if f.name in BY_NAME}


def grid_defaults():
    return {f"grid_{f.name}": f.default for f in dataclasses.fields(GridConfig)}


def yaml_defaults():
    return yaml.safe_load((REPO / "config" / "hypood.yaml").read_text())["/**"]["ros__parameters"]


def node_defaults():
    """What the real node declares when given nothing (an rclpy node in its own context, no traffic)."""
    import rclpy

    from hypood_ros.node.parameters import declare_all
    from ros_harness import random_domain

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random_domain())
    try:
        node = rclpy.create_node("hypood", context=context)
        try:
            values, _, warnings = declare_all(node)
            assert warnings == []
            declared = {name: node.get_parameter(name).value for name in values}
            assert declared == values
            return declared
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def cli_defaults():
    """Every `hypood` option named after a table parameter, over all commands (one default per name)."""
    import argparse

    from hypood_ros.cli import build_parser

    commands = next(a for a in build_parser(None)._actions if isinstance(a, argparse._SubParsersAction)).choices
    stated = {}
    for command in commands.values():
        for action in command._actions:
            if action.option_strings and action.dest in BY_NAME and action.dest != "model":  # --model is required
                value = getattr(action, "shown_default", action.default)
                assert stated.setdefault(action.dest, value) == value, action.dest
    return stated


#: name -> (function, whether it states every parameter, pytest marks)
SOURCES = {
    "PipelineConfig": (pipeline_defaults, False, ()),
    "GridConfig": (grid_defaults, False, ()),
    "config/hypood.yaml": (yaml_defaults, True, ()),
    "node": (node_defaults, True, (pytest.mark.ros,)),
    "hypood CLI": (cli_defaults, False, ()),
}


@pytest.mark.parametrize("source, complete", [pytest.param(fn, complete, id=name, marks=marks)
                                              for name, (fn, complete, marks) in SOURCES.items()])
def test_defaults_agree_with_the_table(source, complete):
    stated = source()
    unknown = set(stated) - set(BY_NAME)
    assert not unknown, f"not in the table: {sorted(unknown)}"
    if complete:
        assert set(stated) == set(BY_NAME), f"missing: {sorted(set(BY_NAME) - set(stated))}"
    for name, value in stated.items():
        expected = BY_NAME[name].default
        assert type(value) is type(expected) and value == expected, f"{name}: {value!r} here, {expected!r} in the table"


def test_pipeline_config_covers_every_pipeline_parameter():
    fields = {f.name for f in dataclasses.fields(PipelineConfig)} - {"outputs"}
    assert fields <= set(BY_NAME)
    assert PipelineConfig().outputs == frozenset(p.name[len("publish_"):] for p in PARAMS
                                                  if p.name.startswith("publish_") and p.default
                                                  and p.name[len("publish_"):] in OUTPUTS)


def test_readme_parameter_table_is_the_generated_one():
    readme = (REPO / "README.md").read_text()
    assert markdown_table() in readme, "regenerate the README table with `python -m hypood_ros.defaults`"


def test_table_entries_are_well_formed():
    assert len(BY_NAME) == len(PARAMS)
    for p in PARAMS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", p.name) and p.description
        assert p.type in (bool, int, float, str)
        if p.choices is not None:
            assert p.type is str and p.default in p.choices, p.name
        if p.range is not None:
            lo, hi, _ = p.range
            assert p.type in (int, float) and lo <= p.default <= hi, p.name
