"""rosbag2 files (sqlite3 `.db3` and `.mcap`) through the `rosbags` library: image frames in, topics out.

ROS-free: messages stay CDR bytes (what the replay tool publishes and records) plus a decoded copy for
fields such as the header. A bare `.mcap` file written by another library is read as well.
"""
from __future__ import annotations

import os
import queue
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from hypood_ros.errors import HypoodError

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED)
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


class BagError(HypoodError):
    """A bag is missing, unreadable, empty, or lacks the requested image topic."""


def typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED if hasattr(Stores, "ROS2_KILTED") else Stores.LATEST)


@dataclass
class BagFrame:
    timestamp_ns: int  # receive time recorded in the bag
    msgtype: str
    rawdata: bytes  # CDR, as published
    msg: object  # decoded (rosbags dataclass); None where only the bytes are read


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _open(path):
    from rosbags.highlevel import AnyReader

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except Exception as exc:  # rosbags raises several reader-specific errors for damaged files
        raise BagError(f"{path}: cannot read bag (corrupt, truncated or not a rosbag2 bag?): "
                       f"{_first_line(exc)}") from None
    return reader


def read_frames(path: str | os.PathLike, topic: str, start: Optional[float] = None,
                duration: Optional[float] = None) -> Iterator[BagFrame]:
    """Image messages of `topic` in recorded order; start/duration in seconds from the bag's start."""
    reader = _open(path)
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        if topic not in topics:
            listed = ", ".join(f"{t} ({m})" for t, m in sorted(topics.items())) or "none"
            raise BagError(f"{path}: no topic {topic!r}; topics in the bag: {listed}")
        if topics[topic] not in IMAGE_TYPES:
            raise BagError(f"{path}: topic {topic!r} has type {topics[topic]}, not an image type "
                           f"({', '.join(IMAGE_TYPES)})")
        connections = [c for c in reader.connections if c.topic == topic]
        begin = reader.start_time
        lo = None if start is None else begin + int(start * 1e9)
        hi = None if duration is None else (lo if lo is not None else begin) + int(duration * 1e9)
        count = 0
        try:
            for conn, timestamp, raw in reader.messages(connections=connections, start=lo, stop=hi):
                count += 1
                yield BagFrame(timestamp, conn.msgtype, bytes(raw), reader.deserialize(raw, conn.msgtype))
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f"{path}: reading failed after {count} messages (truncated?): {_first_line(exc)}") from None
        if count == 0:
            raise BagError(f"{path}: no messages on {topic!r} in the selected time range")
    finally:
        reader.close()


def bag_topics(path: str | os.PathLike) -> Dict[str, str]:
    """topic -> message type, for every topic in the bag."""
    reader = _open(path)
    try:
        return {c.topic: c.msgtype for c in reader.connections}
    finally:
        reader.close()


def topic_counts(path: str | os.PathLike) -> Dict[str, Tuple[str, int]]:
    """topic -> (message type, message count), from the bag's index (no message is read)."""
    reader = _open(path)
    try:
        out: Dict[str, Tuple[str, int]] = {}
        for c in reader.connections:
            kind, count = out.get(c.topic, (c.msgtype, 0))
            out[c.topic] = (kind, count + int(c.msgcount))
        return out
    finally:
        reader.close()


def read_camera_infos(path: str | os.PathLike, topic: str) -> List[BagFrame]:
    """Every CameraInfo message of `topic`, in recorded order, as recorded bytes (`msg` is None: replay sends
    them as they are, and an hour at 30 Hz is 100k messages)."""
    reader = _open(path)
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        if topics.get(topic) != CAMERA_INFO:
            listed = ", ".join(f"{t} ({m})" for t, m in sorted(topics.items())) or "none"
            found = f"has type {topics[topic]}" if topic in topics else "is not in the bag"
            raise BagError(f"{path}: camera info topic {topic!r} {found}; topics in the bag: {listed}")
        connections = [c for c in reader.connections if c.topic == topic]
        out = []
        try:
            for conn, timestamp, raw in reader.messages(connections=connections):
                out.append(BagFrame(timestamp, conn.msgtype, bytes(raw), None))
        except Exception as exc:
            raise BagError(f"{path}: reading {topic!r} failed after {len(out)} messages (truncated?): "
                           f"{_first_line(exc)}") from None
        return out
    finally:
        reader.close()


def read_messages(path: str | os.PathLike, topic: str) -> Iterator[BagFrame]:
    """Every message of `topic`, decoded, in recorded order; none when the bag has no such topic (a recording
    of outputs that never came)."""
    reader = _open(path)
    try:
        connections = [c for c in reader.connections if c.topic == topic]
        count = 0
        try:
            for conn, timestamp, raw in reader.messages(connections=connections) if connections else ():
                count += 1
                yield BagFrame(timestamp, conn.msgtype, bytes(raw), reader.deserialize(raw, conn.msgtype))
        except Exception as exc:
            raise BagError(f"{path}: reading {topic!r} failed after {count} messages (truncated?): "
                           f"{_first_line(exc)}") from None
    finally:
        reader.close()


def first_frame_id(path: str | os.PathLike, topic: str) -> str:
    """header.frame_id of the first image on `topic` (the replay launch file's RViz fixed frame)."""
    frames = read_frames(path, topic)
    try:
        return next(frames).msg.header.frame_id
    finally:
        frames.close()


def frame_rgb(frame: BagFrame) -> np.ndarray:
    """Decoded bag message -> HxWx3 uint8 RGB (FrameError if the message is unusable)."""
    from hypood_ros.conversion import image_to_rgb
    from hypood_ros.images import decode_image

    msg = frame.msg
    if frame.msgtype == COMPRESSED:
        return decode_image(bytes(msg.data))
    return image_to_rgb(msg.height, msg.width, msg.encoding, msg.step, msg.data, msg.is_bigendian)


class BagRecorder:
    """Writes CDR messages into a new bag; it only appears under its final name once closed successfully."""

    def __init__(self, path: str | os.PathLike, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"output bag already exists: {self.path}")
        self._partial = self.path.with_name(self.path.name + ".partial")
        shutil.rmtree(self._partial, ignore_errors=True)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self._partial, version=9, storage_plugin=plugin)
        self._writer.open()
        self._connections: Dict[str, object] = {}
        self._store = typestore()

    def write(self, topic: str, msgtype: str, timestamp_ns: int, rawdata: bytes) -> None:
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self._store)
        self._writer.write(self._connections[topic], timestamp_ns, rawdata)

    def close(self, success: bool = True) -> Optional[Path]:
        self._writer.close()
        if not success:
            shutil.rmtree(self._partial, ignore_errors=True)
            return None
        # The writer names its files after the directory: keep that name stable under the final path.
        os.replace(self._partial, self.path)
        for item in self.path.iterdir():
            if item.name.startswith(self._partial.name):
                item.rename(self.path / item.name.replace(self._partial.name, self.path.name))
        metadata = self.path / "metadata.yaml"
        if metadata.is_file():
            metadata.write_text(metadata.read_text().replace(self._partial.name, self.path.name))
        return self.path


class RecorderThread:
    """A BagRecorder owned by one thread (sqlite3 handles must stay in the thread that opened them).

    `write` may be called from any thread (executor callbacks); `close` waits for the queue to drain.
    """

    _DONE = object()

    def __init__(self, path: str | os.PathLike, storage: str = "mcap") -> None:
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"output bag already exists: {self.path}")
        self._queue: "queue.Queue" = queue.Queue()
        self._error: Optional[BaseException] = None
        self._result: Optional[Path] = None
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(storage,), name="bag-recorder", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._error is not None:
            raise self._error

    def _run(self, storage: str) -> None:
        try:
            recorder = BagRecorder(self.path, storage)
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
            self._opened.set()
            return
        self._opened.set()
        success = False
        try:
            while True:
                item = self._queue.get()
                if item is self._DONE:
                    success = self._success
                    break
                recorder.write(*item)
        except BaseException as exc:
            self._error = exc
        finally:
            self._result = recorder.close(success=success and self._error is None)

    def write(self, topic: str, msgtype: str, timestamp_ns: int, rawdata: bytes) -> None:
        self._queue.put((topic, msgtype, timestamp_ns, rawdata))

    def close(self, success: bool = True) -> Optional[Path]:
        self._success = success
        self._queue.put(self._DONE)
        self._thread.join()
        if self._error is not None:
            raise BagError(f"recording to {self.path} failed: {self._error}")
        return self._result
