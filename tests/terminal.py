"""A command run with its stderr on a pseudo-terminal: what a user at a shell would see drawn."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from typing import Sequence, Tuple


def on_terminal(args: Sequence[object], timeout: float = 300) -> Tuple[int, bytes, str]:
    """`python -m hypood_ros.cli *args` with stderr on a 100-column terminal: (exit status, bytes drawn, stdout)."""
    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    child = subprocess.Popen([sys.executable, "-m", "hypood_ros.cli", *map(str, args)],
                             stdout=subprocess.PIPE, stderr=terminal, text=True)
    os.close(terminal)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    stdout = child.communicate(timeout=timeout)[0]
    return child.returncode, drawn, stdout
