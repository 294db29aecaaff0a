"""Replay accounting by message order and receipt (ReplayLedger), without DDS."""
import pytest

from hypood_ros.replay.ledger import ReplayLedger

TOPICS = ("ood/mask", "semantic/color")


def test_zero_stamps_counted_in_order():
    ledger = ReplayLedger(TOPICS)
    for i in range(5):
        index = ledger.sent((0, 0), now=10.0 + i)
        assert ledger.received("ood/mask", (0, 0), now=10.5 + i) == index == i
    assert ledger.answered("ood/mask") == 5 and ledger.answered("semantic/color") == 0
    assert ledger.latencies() == [0.5] * 5


def test_duplicate_stamps_and_a_skipped_frame():
    ledger = ReplayLedger(TOPICS)
    stamps = [(7, 0), (7, 0), (8, 0), (8, 0), (9, 0)]
    for i, stamp in enumerate(stamps):
        ledger.sent(stamp, now=float(i))
    # The node skipped frame 1 (replaced in its mailbox by frame 2) and answered the others in order.
    for stamp, now in [((7, 0), 0.2), ((8, 0), 2.3), ((8, 0), 3.1), ((9, 0), 4.4)]:
        ledger.received("ood/mask", stamp, now)
    assert ledger.answered("ood/mask") == 4 and ledger.last_answered("ood/mask") == 4
    assert sorted(ledger.first_answer) == [0, 2, 3, 4]
    assert all(latency >= 0 for latency in ledger.latencies())
    # An answer with a stamp whose frames were all credited or skipped matches nothing.
    assert ledger.received("ood/mask", (7, 0), now=5.0) is None and ledger.unmatched == 1


def test_a_frame_skipped_on_one_topic_is_not_credited_later():
    ledger = ReplayLedger(TOPICS)
    for i in range(3):
        ledger.sent((0, 0), now=float(i))
    assert ledger.received("semantic/color", (0, 0), now=0.5) == 0
    assert ledger.received("ood/mask", (0, 0), now=2.5) == 0  # each topic keeps its own order
    assert ledger.received("semantic/color", (0, 0), now=2.6) == 1
    assert ledger.answered("semantic/color") == 2 and ledger.answered("ood/mask") == 1
    # Latency is taken from the first answer on any topic.
    assert ledger.latencies() == [0.5, 1.6]


def test_never_negative_with_repeated_stamps_sent_after_an_earlier_answer():
    """Stamps repeat, and an answer arrives for the first frame after the second was sent."""
    ledger = ReplayLedger(TOPICS)
    ledger.sent((1, 0), now=0.0)
    ledger.sent((1, 0), now=1.0)
    ledger.received("ood/mask", (1, 0), now=1.2)  # credited to frame 0 (oldest), latency 1.2
    ledger.received("ood/mask", (1, 0), now=1.3)  # frame 1, latency 0.3
    assert ledger.latencies() == pytest.approx([1.2, 0.3])


def test_spread_of_a_frames_outputs_and_the_note_it_gives():
    """A frame's outputs are published together: far apart on arrival means delivery (DDS retransmissions),
    which the summary names with its remedy; close together, no note."""
    pytest.importorskip("rclpy")
    from hypood_ros.replay.replayer import SLOW_DELIVERY_S, ReplaySummary

    ledger = ReplayLedger(["a", "b"])
    for i in range(3):
        ledger.sent(i, float(i))
    for i, late in enumerate((0.01, 0.02, 0.9)):
        ledger.received("a", i, i + 0.05)
        ledger.received("b", i, i + 0.05 + late)
    assert ledger.spreads() == pytest.approx([0.01, 0.02, 0.9])
    assert ledger.latencies() == pytest.approx([0.05] * 3)

    def note(spreads):
        lines = ReplaySummary(sent=3, latencies=[0.05] * 3, spreads=spreads, duration=1.0).lines()
        return [line for line in lines if line.startswith("note: the outputs of a frame")]

    assert note([0.01, 0.02, 0.9]) and "fastdds_large_frames.xml" in note([0.01, 0.02, 0.9])[0]
    assert note([0.01, 0.02, SLOW_DELIVERY_S / 2]) == []
