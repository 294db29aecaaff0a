"""The shipped Fast DDS profile for large raw frames, and the environment that makes a process use it.

Fast DDS reads its default XML profile file from an environment variable when a process creates its
first participant, so the profile is chosen per process, before `rclpy.init`: for child processes
through their environment (`profile_env`), for this process with `use_profile`. Fast DDS 3 (Kilted and
later) reads FASTDDS_DEFAULT_PROFILES_FILE, Fast DDS 2 (Humble, Jazzy) FASTRTPS_DEFAULT_PROFILES_FILE
(Kilted's rmw still reads it too, with a deprecation warning), so the variable is picked from ROS_DISTRO
and the other one is cleared. Other RMW implementations ignore both. ROS-free.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, Mapping, Optional

from hypood_ros.errors import ConfigError

PROFILE_NAME = "fastdds_large_frames.xml"
ENV_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")
#: Values of a profile option: Fast DDS's own defaults; the profile shipped here; the profile the
#: environment already names, else the shipped one.
NONE, SHIPPED, AUTO = "none", "shipped", "auto"


def shipped_profile() -> Path:
    """The profile in the source tree, or where `colcon build` / `pip install` put it (share/hypood_ros/config)."""
    candidates = [Path(__file__).resolve().parents[1] / "config" / PROFILE_NAME,
                  Path(sys.prefix) / "share" / "hypood_ros" / "config" / PROFILE_NAME]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("hypood_ros")) / "config" / PROFILE_NAME)
    except Exception:  # not installed with colcon, or ament_index_python absent
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(f"the shipped DDS profile {PROFILE_NAME} is not installed (looked in "
                      f"{', '.join(str(p.parent) for p in candidates)})")


def resolve_profile(value: Optional[str]) -> Optional[Path]:
    """'shipped' -> the shipped file, 'none' or '' -> None (Fast DDS defaults), 'auto' -> the file named by
    the environment or else the shipped one; anything else must be an existing XML file."""
    if value is None or value in ("", NONE):
        return None
    if value == AUTO:
        named = next((os.environ[name] for name in ENV_VARS if os.environ.get(name)), None)
        return resolve_profile(named) if named else shipped_profile()
    if value == SHIPPED:
        return shipped_profile()
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"DDS profile not found: {path}")
    return path.resolve()


def env_var(env: Optional[Mapping[str, str]] = None) -> str:
    """The profile variable that the Fast DDS of this ROS distribution (ROS_DISTRO in `env`) reads."""
    distro = (os.environ if env is None else env).get("ROS_DISTRO", "").lower()
    return ENV_VARS[1] if distro in FAST_DDS_2_DISTROS else ENV_VARS[0]


def settings(profile: Optional[Path], env: Optional[Mapping[str, str]] = None) -> Dict[str, Optional[str]]:
    """Each profile variable -> its value for `profile` (None: unset), for the distribution in `env`."""
    chosen = env_var(env)
    return {name: str(profile) if profile is not None and name == chosen else None for name in ENV_VARS}


def _apply(profile: Optional[Path], env) -> None:
    for name, value in settings(profile, env).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value


def profile_env(profile: Optional[Path], env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """A copy of `env` (default: this process's) that makes a child process use `profile` (None: no profile)."""
    out = dict(os.environ if env is None else env)
    _apply(profile, out)
    return out


def use_profile(profile: Optional[Path]) -> None:
    """Make this process use `profile`; effective only before its first DDS participant (rclpy.init)."""
    _apply(profile, os.environ)
