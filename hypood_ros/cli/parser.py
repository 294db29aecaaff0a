"""The argument parser every `hypood` command uses: one-line errors, defaults in the help, hidden aliases.

Options that are also pipeline or node parameters (`--score`, `--threshold`, `--input-height`, ...) are
added by `add_param` from the one parameter table, `hypood_ros.defaults`: same name (dashes for
underscores), same default, same range, same help as the node's parameter.
"""
from __future__ import annotations

import argparse
import math
from typing import Callable, Iterable, Optional, Sequence

from hypood_ros.errors import ConfigError, UsageError


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (or that it is required) and hides old spellings kept as aliases."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if text is argparse.SUPPRESS or "%(default)" in text or "(default" in text:
            return text
        if action.required:
            return text + " (required)"
        default = getattr(action, "shown_default", action.default)
        if default is None or default is False or default in ([], "", argparse.SUPPRESS) or action.nargs == 0:
            return text
        return text + " (default: %s)" % str(default).replace("%", "%%")

    def _format_action_invocation(self, action: argparse.Action) -> str:
        hidden = getattr(action, "hidden_aliases", ())
        if not hidden:
            return super()._format_action_invocation(action)
        shown = [s for s in action.option_strings if s not in hidden]
        saved, action.option_strings = action.option_strings, shown
        try:
            return super()._format_action_invocation(action)
        finally:
            action.option_strings = saved


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are UsageError (one line, exit 2) instead of usage text + exit."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        for action in self._actions:  # name an option by its current spelling, not "--new/--old"
            hidden = getattr(action, "hidden_aliases", ())
            if hidden:
                message = message.replace("/".join(action.option_strings), action.option_strings[0])
        # unrecognized options of a command are reported by the top parser: point at the command's help
        prog = f"{self.prog} {self.command}" if getattr(self, "command", None) else self.prog
        raise UsageError(f"{message} (see `{prog} --help`)")


def add_option(parser, *names: str, aliases: Sequence[str] = (), **kwargs) -> argparse.Action:
    """parser.add_argument(*names, *aliases, ...) where `aliases` (old spellings) work but are not shown."""
    action = parser.add_argument(*names, *aliases, **kwargs)
    action.hidden_aliases = tuple(aliases)
    return action


# ---- value types: each raises ArgumentTypeError, which the parser reports as one line ----

def merge_positional(option_value, positional_value, option: str, what: str, command: str):
    """One value from an option and its older positional spelling: given once, or refused in one line."""
    if option_value and positional_value and option_value != positional_value:
        raise UsageError(f"give {what} once, with {option}")
    value = option_value or positional_value
    if not value:
        raise UsageError(f"the following arguments are required: {option} (see `hypood {command} --help`)")
    return value


def _parse(text: str, kind: type):
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def _number(text: str, kind: type):
    value = _parse(text, kind)
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def float_in(low: Optional[float] = None, high: Optional[float] = None, low_open: bool = False,
             high_open: bool = False) -> Callable[[str], float]:
    """A finite float within [low, high] (or open at either end)."""
    def parse(text: str) -> float:
        value = _number(text, float)
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            left = "(" if low_open else "["
            right = ")" if high_open else "]"
            raise argparse.ArgumentTypeError(
                f"must be in {left}{'-inf' if low is None else _short(low)}, "
                f"{'inf' if high is None else _short(high)}{right}, got {_short(value)}")
        return value
    parse.__name__ = "number"
    return parse


def _short(value: float) -> str:
    return f"{value:g}"


def device_name(text: str) -> str:
    from hypood_ros.devices import parse_device

    try:
        return parse_device(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


device_name.__name__ = "device"


# ---- options from the parameter table ----

def param_type(name: str) -> Callable[[str], object]:
    """The argparse type of table parameter `name`: the text parsed to the parameter's type, then the table's
    one check (`defaults.check_value`: finite, range and step, allowed values), its reason as the error."""
    from hypood_ros.defaults import BY_NAME, ParamValueError, check_value

    param = BY_NAME[name]
    if name == "device":
        return device_name

    def parse(text: str) -> object:
        value = _parse(text, param.type) if param.type in (int, float) else text
        try:
            return check_value(param, value)
        except ParamValueError as exc:
            raise argparse.ArgumentTypeError(exc.reason) from None
    parse.__name__ = {int: "integer", float: "number"}.get(param.type, param.type.__name__)
    return parse


_METAVARS = {int: "N", float: "VALUE", str: "NAME", "device": "DEVICE", "input_height": "PIXELS",
             "input_width": "PIXELS"}


def add_param(parser, name: str, aliases: Sequence[str] = (), explicit: bool = False, help: Optional[str] = None,
              flag: Optional[str] = None, **kwargs) -> argparse.Action:
    """Option `--NAME` for table parameter NAME with its default, choices, range and description.

    explicit: the parsed value is None unless the option was given (the help still shows the table's
    default), for options that only apply in some cases and must be refused where they do not, or whose
    value may come from elsewhere (a params file); a true/false parameter then takes `--NAME/--no-NAME`.
    flag: the option's spelling where it is not `--NAME` (the value still lands in `args.NAME`).
    """
    from hypood_ros.defaults import BY_NAME

    param = BY_NAME[name]
    flag = flag or "--" + name.replace("_", "-")
    text = help or param.description
    if param.type is bool:
        kind = argparse.BooleanOptionalAction if param.default or explicit else "store_true"
        if explicit and "(default" not in text:
            text += f" (default: {'on' if param.default else 'off'})"
        action = add_option(parser, flag, aliases=aliases, dest=name, action=kind,
                            default=None if explicit else param.default, help=text, **kwargs)
        action.shown_default = param.default
        action.param = name
        return action
    choices = [c for c in param.choices if c] if param.choices else None
    if choices and not all(c in text for c in choices):
        text += " (one of: " + ", ".join(choices) + ")"
    # the allowed values are checked by the type (the table's check), in the node's words
    action = add_option(parser, flag, aliases=aliases, dest=name, type=param_type(name),
                        default=None if explicit else param.default, help=text,
                        metavar=kwargs.pop("metavar", None) or _METAVARS.get(name) or _METAVARS[param.type], **kwargs)
    action.shown_default = param.default
    action.param = name
    return action


def add_model_options(parser, model_help: str = "model file: checkpoint (.pt), ONNX (.onnx), TensorRT engine "
                      "(.engine) or AOTInductor package (.pt2)", input_size: bool = True,
                      explicit: bool = False) -> None:
    """--model, --backend, --device (and the network input size) as every inference command spells them.
    explicit: --model may come from a --params-file instead (`params_file.apply_params_file` fills it)."""
    add_option(parser, "--model", required=not explicit, default=None, metavar="FILE",
               help=model_help + (" (required here or as model: in --params-file)" if explicit else ""))
    add_param(parser, "backend", explicit=explicit,
              help="runtime: torch, onnxruntime, tensorrt or aoti (default: from the model file's extension: .pt "
                   "torch, .onnx onnxruntime, .engine tensorrt, .pt2 aoti)")
    add_param(parser, "device", explicit=explicit)
    add_param(parser, "fp16", explicit=explicit)
    add_param(parser, "bf16", explicit=explicit)
    if input_size:
        add_input_size(parser, "network input {} for a checkpoint (multiple of 14); ONNX models and engines keep "
                               "the size they were exported with", explicit=True)


def add_input_size(parser, help_pattern: str, explicit: bool = False) -> None:
    """--input-height/--input-width; 0 or not given: the size the checkpoint records, else the old default."""
    from hypood_ros.runtimes import DEFAULT_INPUT_HW

    for side, fallback in zip(("height", "width"), DEFAULT_INPUT_HW):
        add_param(parser, f"input_{side}", aliases=[f"--{side}"], explicit=explicit,
                  help=help_pattern.format(side) + f"; 0 (default): the {side} the checkpoint records, else {fallback}")


def add_score_params(parser, names: Iterable[str] = ("score_resolution", "eta", "lam", "delta"),
                     explicit: bool = False) -> None:
    for name in names:
        add_param(parser, name, explicit=explicit)


#: Options that act on the thresholded mask and the pictures, after the score.
MASK_OPTIONS = ("threshold", "min_area", "opening", "overlay_alpha")
#: The mask's region of interest (hypood_ros.roi) and what is thresholded in it (hypood_ros.contrast): the mask
#: and its calibration both depend on them.
ROI_OPTIONS = ("roi", "roi_margin", "roi_drop_known", "local_contrast")


def add_pipeline_options(parser, mask: bool = True, explicit: bool = False) -> None:
    """Options of the commands that drive a FramePipeline (run, calibrate).

    mask=False (calibrate: it chooses the threshold from the raw scores inside the region of interest)
    leaves out MASK_OPTIONS, which would be accepted and have no effect; they keep the table's defaults.
    Both take the ROI_OPTIONS: the threshold holds for the region it was calibrated in. explicit: the
    table's options are None unless given (a --params-file fills them: `params_file.apply_params_file`)."""
    add_model_options(parser, explicit=explicit)
    add_score_params(parser, ("score", "score_resolution") + (("threshold",) if mask else ()) + ("eta", "lam", "delta"),
                     explicit=explicit)
    add_score_params(parser, ROI_OPTIONS, explicit=explicit)
    add_param(parser, "ego_mask", metavar="FILE", explicit=explicit)
    for name in MASK_OPTIONS[1:]:
        if mask:
            add_param(parser, name, explicit=explicit)
    if not mask:
        from hypood_ros.defaults import BY_NAME

        parser.set_defaults(**{name: BY_NAME[name].default for name in MASK_OPTIONS})
    add_sml_stats(parser, explicit=explicit)
    add_param(parser, "engine", metavar="FILE", explicit=explicit)
    add_param(parser, "rebuild_engine", explicit=explicit)
    add_pixel_limit(parser)


def add_sml_stats(parser, explicit: bool = False) -> None:
    add_param(parser, "sml_stats", metavar="FILE", explicit=explicit,
              help="JSON statistics from `hypood fit-sml` (needed by the score sml)")


def add_pixel_limit(parser) -> None:
    from hypood_ros.images import MAX_PIXELS, MIN_SIDE

    add_option(parser, "--max-image-pixels", type=int_at_least(MIN_SIDE * MIN_SIDE), default=MAX_PIXELS,
               metavar="N", help="largest input image (width x height) read; bigger ones are refused")


def add_no_progress(parser, help: str = "no progress bar (it is drawn only when stderr is a terminal)") -> None:
    """Every command with a bar takes it; `main` applies it before the command runs."""
    add_option(parser, "--no-progress", action="store_true", help=help)


def add_overwrite(parser) -> None:
    add_option(parser, "--overwrite", action="store_true", help="replace --out if it already exists")
