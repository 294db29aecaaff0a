"""What the demo runs with: its settings, the shipped model's place, the names it writes, and the small
helpers every stage uses (the params file as the node reads it, the products of a run)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

from hypood_ros import topics

REPO = Path(__file__).resolve().parents[3]
MODEL_DIR = REPO / "models" / "demo"
TOPIC = "/front/image_raw"
T = topics.IMAGE_OUTPUTS  # the node's image outputs by name
#: Outputs of the demo folder that a new run replaces.
PRODUCTS = ("drive", "outputs", "anomaly_frames", "eval", "contact_sheet.png", "overlay.gif", "summary.json",
            "ego_mask.png")
#: Evaluator layouts of the anomaly frames: the whole picture, and the road only.
TRACKS = ("smiyc-anomaly", "smiyc-obstacle")
#: The node's vehicle frame in the demo: its origin is the point on the road below the camera.
BASE_FRAME = "base_link"
#: Parameters of the node's obstacle mask read from the params file (the node's defaults where it has none).
MASK_PARAMS = ("score", "threshold", "roi", "roi_margin", "roi_drop_known", "local_contrast", "opening", "min_area")
#: Colours (RGB) of the contact sheet's obstacle column: reported obstacles, generated obstacles missed.
REPORTED_COLOR, MISSED_COLOR = (255, 140, 0), (0, 220, 255)
#: The comparisons the thesis and the UEM paper make, reported side by side.
COMPARISONS = {
    "energy_family": ["energy", "normalized_energy", "weighted_normalized_energy"],
    "llr": ["uem_llr", "hyperspherical_llr"],
}


@dataclass
class DemoSettings:
    out: Path = Path("demo_out")
    model: Path = MODEL_DIR / "model.pt"
    params: Optional[Path] = MODEL_DIR / "params.yaml"
    seed: int = 500_000  # a street no training scene used (training seeds are 0-1099)
    frames: int = 60
    fps: float = 10.0
    speed: float = 8.0
    anomalies: int = 3
    size: Sequence[int] = (240, 480)
    #: network input; None: input_height/input_width of the params file (the size its threshold was
    #: calibrated at), else the frame size rounded down to multiples of 14
    input_size: Optional[Sequence[int]] = None
    rate: Optional[float] = None  # None: each frame once the node answered the previous one
    sheet_rows: int = 4


def node_params(path: Optional[Path]) -> Dict[str, object]:
    """The parameters the node gets from a params YAML (score, threshold, eta, lam, ...), by ROS's section
    rules for the node's name; {} without a file."""
    from hypood_ros.node.params_files import node_values

    return {} if path is None else node_values(path)


def remove_products(out: Path) -> None:
    """An earlier run's products (and half-written ones) in `out`; anything else there is left alone."""
    for name in PRODUCTS + tuple(n + ".partial" for n in PRODUCTS):
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists() or target.is_symlink():
            target.unlink(missing_ok=True)
