"""What the commands print besides their result: progress bars and notes, both on stderr.

Progress bars only draw on a terminal (logs and pipes get no carriage-return noise), and always end
their line before anything else is printed, so an error never shares a line with a bar.
"""
from __future__ import annotations

import sys


def progress(iterable=None, total=None, desc: str = "", unit: str = "it"):
    """A tqdm bar on stderr, drawn only when stderr is a terminal; use it as a context manager."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=not sys.stderr.isatty(),
                dynamic_ncols=True)


def note(text: str) -> None:
    """One line on stderr that does not break a running bar."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)
