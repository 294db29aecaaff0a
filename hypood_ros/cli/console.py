"""What the commands print besides their result: progress bars and notes, both on stderr.

Progress bars only draw on a terminal (logs and pipes get no carriage-return noise), and always end
their line before anything else is printed, so an error never shares a line with a bar.
"""
from __future__ import annotations

import sys

_SHOW = True  # `--no-progress` turns every bar of the command off (`hide_progress`)


def hide_progress() -> None:
    """No bar for the rest of this process (a command's `--no-progress`)."""
    global _SHOW
    _SHOW = False


def progress(iterable=None, total=None, desc: str = "", unit: str = "it", leave: bool = True):
    """A tqdm bar on stderr, drawn only when stderr is a terminal; use it as a context manager.

    `leave=False`: the bar's line is cleared when it closes (a stage of a longer run, as the demo's)."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr,
                disable=not (_SHOW and sys.stderr.isatty()), dynamic_ncols=True, leave=leave)


def note(text: str) -> None:
    """One line on stderr that does not break a running bar."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)
