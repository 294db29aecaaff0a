"""The embedded demo (`make demo`, `hypood demo`): a generated drive through the real node, and what it saw.

1. generate a drive with evaluation-family anomalies (never used in training) -> MCAP bag + SMIYC layout;
2. start `hypood_node` in its own process with the shipped demo model and the generated camera's pose,
   replay the bag's frames and camera_info to it over DDS and record its outputs, the obstacles it reports
   on the road included (ood/obstacles, ood/grid, ood/markers; `hypood_ros.replay.replayer`);
3. from the recorded outputs: contact sheet, animated overlay, mIoU of the node's semantic map and the
   metrics of the score the node published; the node's mask against the generated obstacles (SMIYC
   component metrics, each obstacle found or missed by its true range, pixel recall and false alarms inside
   the node's region) and its reported obstacles against them (range errors, false obstacles:
   `hypood_ros.evaluation.obstacles`); every score of the registry on the anomaly frames through the
   project's evaluator (the numbers `hypood eval --dataset smiyc-anomaly` gives on `anomaly_frames/`), PR
   and ROC curves; all of it in `summary.json` and a printed table.

Generated scenes and a small model: a demonstration of the pipeline, not a claim about real-world accuracy.
"""
from typing import Callable

from hypood_ros.apps.demo.settings import MODEL_DIR, PRODUCTS, DemoSettings, remove_products

__all__ = ["MODEL_DIR", "PRODUCTS", "DemoSettings", "remove_products", "run_demo", "table"]


def run_demo(settings: DemoSettings, progress: Callable, log: Callable[[str], None]) -> dict:
    """The whole demo (`hypood_ros.apps.demo.run`), imported only when it runs: ROS and the evaluator load then.

    `progress` and `log` are the command line's bar and line on stderr (`hypood_ros.cli.console`'s `progress`
    and `note`), handed down because nothing below the command line imports it."""
    from hypood_ros.apps.demo.run import run_demo as run

    return run(settings, progress, log)


def table(result: dict) -> str:
    from hypood_ros.apps.demo.report import table as printed

    return printed(result)
