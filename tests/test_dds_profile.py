"""The shipped Fast DDS profile: what it declares, how processes get it, and 1280x720 best-effort frames through it."""
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hypood_ros.dds import ENV_VARS, profile_env, resolve_profile, shipped_profile
from hypood_ros.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
NS = {"d": "http://www.eprosima.com"}
FRAME_1080P = 1920 * 1080 * 3


def test_profile_sizes_the_transports_for_1080p_at_30_hz():
    root = ET.parse(shipped_profile()).getroot()
    assert shipped_profile() == REPO / "config" / "fastdds_large_frames.xml"
    transports = {t.findtext("d:transport_id", namespaces=NS): t
                  for t in root.iterfind(".//d:transport_descriptor", NS)}
    kinds = {t.findtext("d:type", namespaces=NS): t for t in transports.values()}
    # The node publishes five outputs per frame (about 4x the rgb8 input at 1080p): the segment holds two frames' worth.
    assert int(kinds["SHM"].findtext("d:segment_size", namespaces=NS)) >= 2 * 4 * FRAME_1080P
    udp = kinds["UDPv4"]
    assert int(udp.findtext("d:sendBufferSize", namespaces=NS)) >= 4 * 2**20
    assert int(udp.findtext("d:receiveBufferSize", namespaces=NS)) >= 4 * 2**20
    participant = root.find(".//d:participant", NS)
    assert participant.get("is_default_profile") == "true"  # what rmw_fastrtps applies to every participant
    used = [e.text for e in participant.iterfind("d:rtps/d:userTransports/d:transport_id", NS)]
    assert set(used) == set(transports)
    assert participant.findtext("d:rtps/d:useBuiltinTransports", namespaces=NS) == "false"


def test_environment_names_the_variable_of_the_distribution(tmp_path):
    profile = shipped_profile()
    kilted = profile_env(profile, {"ROS_DISTRO": "kilted", "FASTRTPS_DEFAULT_PROFILES_FILE": "/old.xml"})
    assert kilted["FASTDDS_DEFAULT_PROFILES_FILE"] == str(profile) and "FASTRTPS_DEFAULT_PROFILES_FILE" not in kilted
    for distro in ("humble", "jazzy"):
        env = profile_env(profile, {"ROS_DISTRO": distro})
        assert env["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(profile) and "FASTDDS_DEFAULT_PROFILES_FILE" not in env
    cleared = profile_env(None, {name: "/x.xml" for name in ENV_VARS})
    assert not set(ENV_VARS) & set(cleared)


def test_profile_option_values(tmp_path, monkeypatch):
    assert resolve_profile("none") is None and resolve_profile("") is None
    assert resolve_profile("shipped") == shipped_profile()
    mine = tmp_path / "mine.xml"
    mine.write_text("<dds/>")
    assert resolve_profile(str(mine)) == mine
    with pytest.raises(ConfigError, match="DDS profile not found"):
        resolve_profile(str(tmp_path / "missing.xml"))
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert resolve_profile("auto") == shipped_profile()
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(mine))
    assert resolve_profile("auto") == mine


@pytest.mark.ros
@pytest.mark.slow
def test_1280x720_best_effort_frames_arrive_between_two_processes_with_the_profile():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "dds_frames.py"), "--sizes", "1280x720",
                           "--frames", "15", "--profiles", "shipped", "--json"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])[0]
    assert row["shipped"] == row["sent"] == 15, row
