"""Every place that states a parameter default agrees with the one table (hypood_ros/defaults.py).

Each place is one entry of SOURCES: a function returning {name: default} for the names it states.
Add the launch files' arguments here as a further entry.
"""
import argparse
import dataclasses
import math
import re
from pathlib import Path

import pytest
import yaml

from hypood_ros.cli.models import config_from_args
from hypood_ros.cli.parser import Parser, add_param
from hypood_ros.defaults import BY_NAME, OUTPUTS, PARAMS, check_value, markdown_table
from hypood_ros.errors import ConfigError, UsageError
from hypood_ros.geometry import GridConfig
from hypood_ros.pipeline import PIPELINE_FIELDS, PipelineConfig

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


def test_node_page_parameter_table_is_the_generated_one():
    page = (REPO / "docs" / "NODE.md").read_text()
    assert markdown_table() in page, "regenerate the table in docs/NODE.md with `python -m hypood_ros.defaults`"


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


# ---- one check of a value: the node's start-up check, the CLI options and PipelineConfig agree ----

def edge_values(param):
    """(value, allowed by the table) at and just beyond each bound of the range, and for the allowed values."""
    if param.choices is not None:
        wrong = ["not_" + param.choices[-1], param.choices[-1].upper() or "X"]  # unknown, and a wrong case
        return [(c, True) for c in param.choices] + [(w, False) for w in wrong]
    lo, hi, step = param.range
    if param.type is float:
        return [(float(lo), True), (float(hi), True), (math.nextafter(lo, -math.inf), False),
                (math.nextafter(hi, math.inf), False)]
    cases = [(int(lo), True), (int(hi), True), (int(lo) - 1, False), (int(hi) + 1, False)]
    if step > 1:
        cases += [(int(lo + step), True), (int(lo) + 1, False), (int(hi) - 1, False)]
    return cases


CHECKED = [p for p in PARAMS if p.range is not None or p.choices is not None]


def node_accepts(param, value):
    try:
        check_value(param, value)  # what the node runs on every value given at start, and the demo's params file
    except ConfigError:
        return False
    return True


def cli_accepts(param, value):
    parser = Parser(prog="hypood")
    add_param(parser, param.name)
    try:
        parsed = getattr(parser.parse_args([f"--{param.name.replace('_', '-')}={value!r}" if param.type is float
                                            else f"--{param.name.replace('_', '-')}={value}"]), param.name)
    except UsageError:
        return False
    assert parsed == value and type(parsed) is param.type
    return True


def pipeline_accepts(param, value):
    try:
        config = PipelineConfig(**{param.name: value})
    except ConfigError:
        return False
    assert getattr(config, param.name) == value
    return True


def test_every_bounded_parameter_is_checked():
    assert len(CHECKED) > 30 and {"lam", "threshold", "input_height", "score", "roi", "backend"} <= {
        p.name for p in CHECKED}
    assert set(PIPELINE_FIELDS) - {"roi_drop_known"} <= {p.name for p in CHECKED}


@pytest.mark.parametrize("param", CHECKED, ids=[p.name for p in CHECKED])
def test_node_cli_and_pipeline_accept_and_refuse_the_same_values(param):
    for value, allowed in edge_values(param):
        places = {"table": allowed, "node": node_accepts(param, value), "cli": cli_accepts(param, value)}
        if param.name in PIPELINE_FIELDS:
            places["PipelineConfig"] = pipeline_accepts(param, value)
        assert len(set(places.values())) == 1, f"{param.name} = {value!r}: {places}"


def test_pipeline_config_refuses_in_the_tables_words():
    for name, value in [("lam", 100.5), ("threshold", 1.0e5), ("threshold", math.inf), ("min_area", 2.0),
                        ("eta", "1"), ("roi_drop_known", 1), ("opening", True), ("score", "energi")]:
        with pytest.raises(ConfigError) as caught:
            check_value(BY_NAME[name], value)
        with pytest.raises(ConfigError, match=re.escape(str(caught.value))):
            PipelineConfig(**{name: value})
    config = PipelineConfig(threshold=2, lam=0)  # an integer is taken for a float, as the node takes it
    assert type(config.threshold) is float and type(config.lam) is float
    with pytest.raises(ConfigError, match="unknown outputs"):
        PipelineConfig(outputs={"mask", "hologram"})


def test_pipeline_fields_are_written_once():
    from hypood_ros.node.parameters import CONFIG_FIELDS

    assert PIPELINE_FIELDS == tuple(f.name for f in dataclasses.fields(PipelineConfig) if f.name != "outputs")
    assert CONFIG_FIELDS == PIPELINE_FIELDS and "outputs" not in PIPELINE_FIELDS
    changed = {"score": "energy", "score_resolution": "network", "threshold": 3.5, "eta": -1.0, "delta": 0.5,
               "lam": 7.0, "min_area": 12, "opening": 3, "roi": "none", "roi_margin": 9, "roi_drop_known": True,
               "local_contrast": 0.15,
               "overlay_alpha": 0.25}
    assert set(changed) == set(PIPELINE_FIELDS)
    assert all(changed[name] != BY_NAME[name].default for name in changed)
    config = config_from_args(argparse.Namespace(**changed, model="m.pt"))
    assert {name: getattr(config, name) for name in PIPELINE_FIELDS} == changed
