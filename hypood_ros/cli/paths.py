"""Paths on the command line: inputs checked before any work, outputs that appear whole or not at all.

`Output` is opened before a command starts its work: it refuses a destination that cannot be written
(a folder where a file is expected, an existing file, a read-only place, a wrong suffix), then hands
the command a temporary name in the destination folder. Only a successful command renames it to the
final name; a failed or interrupted one leaves nothing behind (no partial file, no `.tmp`, no folder
it created).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

from hypood_ros.errors import UsageError
from hypood_ros.folders import missing_folders, nearest_existing, remove_empty

MODEL_SUFFIXES = (".pt", ".pth", ".onnx", ".engine", ".plan", ".pt2")
CHECKPOINT_SUFFIXES = (".pt", ".pth")


def existing_file(value, option: str, suffixes: Sequence[str] = (), what: str = "file") -> Path:
    """A path to a readable file (with one of `suffixes`, if given); UsageError naming `option` otherwise."""
    path = Path(value)
    if not path.exists():
        raise UsageError(f"{option} {path}: no such {what}")
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; it must be a {what}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise UsageError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{option} {path}: permission denied")
    return path


def existing_folder(value, option: str, what: str = "folder") -> Path:
    path = Path(value)
    if not path.exists():
        raise UsageError(f"{option} {path}: no such {what}")
    if not path.is_dir():
        raise UsageError(f"{option} {path} is a file; it must be a {what}")
    return path


def model_file(value, option: str = "--model", backend: Optional[str] = None,
               suffixes: Sequence[str] = MODEL_SUFFIXES) -> Path:
    """A model file whose kind the extension tells (or any file when --backend names the runtime)."""
    return existing_file(value, option, () if backend else suffixes, what="model file")


def _read_umask() -> int:
    umask = os.umask(0)  # the only way to read it; done once, at import, before any threads
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def _usual_mode(path: Path, folder: bool) -> None:
    """The permissions a plain open()/mkdir() would have given (0666 / 0777 less the umask)."""
    try:
        os.chmod(path, (0o777 if folder else 0o666) & ~_UMASK)
    except OSError:
        pass  # a file system without modes


class Output:
    """A destination file or folder, checked now, written under a temporary name, renamed on success.

    with Output(args.out, "--out", suffixes=(".onnx",)) as tmp:
        write(tmp)            # tmp is in the destination folder, so the final rename is atomic
    # here args.out exists, complete; on an exception nothing is left

    kind: "file" (the command writes one file at `tmp`; `companions` are more suffixes written beside it,
    e.g. ".json" for an engine's sidecar) or "folder" (`tmp` is an empty folder to fill). create=False
    reserves the name without creating it, for writers that create their destination themselves.
    """

    def __init__(self, value, option: str = "--out", kind: str = "file", suffixes: Sequence[str] = (),
                 overwrite: bool = False, companions: Sequence[str] = (), create: bool = True) -> None:
        if value is None or str(value).strip() == "":
            raise UsageError(f"{option} needs a path")
        self.path = Path(value)
        self._trailing_slash = str(value).endswith(("/", os.sep))
        self.option, self.kind, self.overwrite = option, kind, overwrite
        self.companions = tuple(companions)
        self.create = create
        self.tmp: Optional[Path] = None
        self._made: List[Path] = []
        self._check(suffixes)
        self._open()

    # -- checks before work --
    def _check(self, suffixes: Sequence[str]) -> None:
        path, option = self.path, self.option
        if self.kind == "file":
            if path.is_dir() or self._trailing_slash:
                example = path / ("out" + (suffixes[0] if suffixes else ""))
                raise UsageError(f"{option} {path} is a folder; give a file name, e.g. {example}")
            if suffixes and path.suffix.lower() not in suffixes:
                raise UsageError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
            if path.exists() and not self.overwrite:
                raise UsageError(f"{option} {path} already exists; choose another name or pass --overwrite")
        else:
            if path.exists() and not path.is_dir():
                raise UsageError(f"{option} {path} is a file; it must be a folder (new or empty)")
            if path.is_dir() and any(path.iterdir()):
                raise UsageError(f"{option} {path} already exists and is not empty; choose a new folder")
        anchor = nearest_existing(path.parent)
        if not anchor.is_dir():
            raise UsageError(f"{option} {path}: {anchor} is a file, not a folder")
        if not os.access(anchor, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {path}: cannot write in {anchor} (permission denied)")

    def _open(self) -> None:
        """Create missing parent folders (remembered, for cleanup) and the temporary name; probes writability."""
        try:
            for folder in missing_folders(self.path.parent):
                folder.mkdir()
                self._made.append(folder)
            prefix = f".{self.path.name}.partial-"
            if self.kind == "folder":
                self.tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=self.path.parent))
                if not self.create:
                    self.tmp.rmdir()
            else:
                fd, name = tempfile.mkstemp(prefix=prefix, suffix=self.path.suffix, dir=self.path.parent)
                os.close(fd)
                self.tmp = Path(name)
                if not self.create:
                    self.tmp.unlink()
        except OSError as exc:
            self.discard()
            raise UsageError(f"{self.option} {self.path}: cannot write there ({exc.strerror or exc})") from None

    # -- the end --
    def commit(self) -> Path:
        assert self.tmp is not None
        _usual_mode(self.tmp, self.kind == "folder")  # mkstemp/mkdtemp make them private to the owner
        if self.kind == "folder":
            if self.path.is_dir():  # checked empty at the start
                self.path.rmdir()
            os.replace(self.tmp, self.path)
        else:
            os.replace(self.tmp, self.path)
            for suffix in self.companions:
                extra = Path(str(self.tmp) + suffix)
                if extra.exists():
                    os.replace(extra, Path(str(self.path) + suffix))
        self.tmp = None
        self._made = []
        return self.path

    def release(self) -> None:
        """Success of a writer that created the final path itself (create=False): keep what it made."""
        self.tmp = None
        self._made = []

    def discard(self) -> None:
        """Remove the temporary output, anything a writer put beside it under that name, and new folders."""
        if self.tmp is not None:
            for item in [i for i in self.tmp.parent.iterdir() if i.name.startswith(self.tmp.name)]:
                if item.is_dir() and not item.is_symlink():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    item.unlink(missing_ok=True)
            self.tmp = None
        remove_empty(self._made)
        self._made = []

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def image_files(value, option: str = "--images") -> List[Path]:
    """The visible files of an input folder, sorted; an empty folder is refused."""
    folder = existing_folder(value, option)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise UsageError(f"{option} {folder}: the folder has no files")
    return files
