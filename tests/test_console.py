"""The command line's progress bar on a real pseudo-terminal: what stays on the screen, and when it draws."""
import fcntl
import os
import pty
import struct
import sys
import termios

from hypood_ros.cli import console


def drawn(terminal=True, **options) -> bytes:
    """What `console.progress(total=3, **options)` writes to stderr over 3 steps (a 100-column pty, or a pipe)."""
    read, write = pty.openpty() if terminal else os.pipe()
    if terminal:
        fcntl.ioctl(write, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    with os.fdopen(write, "w") as stderr:
        sys.stderr, before = stderr, sys.stderr
        try:
            with console.progress(total=3, desc="stage", unit="frame", **options) as bar:
                for _ in range(3):
                    bar.update(1)
        finally:
            sys.stderr = before
    out = b""
    while True:
        try:
            chunk = os.read(read, 4096)
        except OSError:  # a pty whose other end is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(read)
    return out


def test_bar_leaves_its_last_line_unless_told_not_to(monkeypatch):
    monkeypatch.setattr(console, "_SHOW", True)  # a `--no-progress` run earlier in this process turned bars off
    kept = drawn()
    assert b"stage" in kept and b"3/3" in kept and kept.endswith(b"\r\n"), kept
    gone = drawn(leave=False)
    assert b"stage" in gone and b"\n" not in gone and gone.endswith(b"\r"), gone
    assert gone.rstrip(b"\r").rsplit(b"\r", 1)[-1].strip() == b"", "the bar's line is not cleared: " + repr(gone)


def test_bar_draws_only_on_a_terminal_and_not_after_no_progress(monkeypatch):
    monkeypatch.setattr(console, "_SHOW", True)  # restored after the test, hide_progress below included
    assert drawn(leave=False) != b""
    assert drawn(terminal=False, leave=False) == b""
    console.hide_progress()  # what --no-progress calls
    assert drawn(leave=False) == b"" and drawn() == b""
