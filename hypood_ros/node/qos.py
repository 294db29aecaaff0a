"""QoS of the node's topics: the node's parameters give each profile, ROS 2's QoS overrides may adjust it.

`input_qos`/`input_depth` and `output_reliability`/`output_depth` set the profiles (and are what the launch
files and `hypood replay` pass). Every subscription and publisher is also created with rclpy's
`QoSOverridingOptions.with_default_policies()`, so the standard read-only parameters
`qos_overrides.<topic>.<publisher|subscription>.<history|depth|reliability>`, given at start, override
those policies per topic, as for any ROS 2 node (the topic is the resolved name: `/image`, `/car/ood/mask`).
A value rclpy cannot use is one ConfigError line.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions

from hypood_ros.errors import ConfigError

OVERRIDES = QoSOverridingOptions.with_default_policies()


def qos(reliability: str, depth: int, latched: bool = False) -> QoSProfile:
    """A keep-last profile from the node's QoS parameters (best_effort | reliable)."""
    policy = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def _refused(node, kind: str, topic: str, exc: Exception) -> ConfigError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    try:
        topic = node.resolve_topic_name(topic)  # the name the override parameter uses
    except Exception:  # an invalid name: keep it as given
        pass
    return ConfigError(f"QoS override of the {kind} on {topic}: {text}")


def publisher(node, msg_type, topic: str, profile: QoSProfile):
    """node.create_publisher with the QoS override parameters (a copy of `profile` is overridden)."""
    try:
        return node.create_publisher(msg_type, topic, QoSProfile(**_fields(profile)),
                                     qos_overriding_options=OVERRIDES)
    except Exception as exc:  # rclpy raises RuntimeError, InvalidQosOverridesError or a parameter type error
        raise _refused(node, "publisher", topic, exc) from None


def subscription(node, msg_type, topic: str, callback, profile: QoSProfile, **kwargs):
    """node.create_subscription with the QoS override parameters."""
    try:
        return node.create_subscription(msg_type, topic, callback, QoSProfile(**_fields(profile)),
                                        qos_overriding_options=OVERRIDES, **kwargs)
    except Exception as exc:
        raise _refused(node, "subscription", topic, exc) from None


def _fields(profile: QoSProfile) -> dict:
    return {"history": profile.history, "depth": profile.depth, "reliability": profile.reliability,
            "durability": profile.durability}


def describe(profile: QoSProfile) -> str:
    """`reliable, depth 5` / `best_effort, keep_all`: the policies the entity got, overrides included."""
    reliability = profile.reliability.name.lower()
    if profile.history == HistoryPolicy.KEEP_ALL:
        return f"{reliability}, keep_all"
    return f"{reliability}, depth {profile.depth}"
