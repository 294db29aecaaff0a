"""Folders a command is about to create: which are missing and where the nearest existing one is, and
removing them again after a failure. ROS-free and torch-free: the CLI's output checks and training's run
folder share it."""
from __future__ import annotations

from pathlib import Path
from typing import List


def nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists (where writability can be checked)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def missing_folders(path: Path) -> List[Path]:
    """`path` and its ancestors that do not exist yet, outermost first (the order to create them in)."""
    missing: List[Path] = []
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        missing.insert(0, probe)
        probe = probe.parent
    return missing


def remove_empty(made: List[Path]) -> None:
    """Folders a failed command created (outermost first), innermost first, up to the first one that is
    not empty: files someone else put there stay."""
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            break
