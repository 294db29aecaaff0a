"""The node's mask and reported obstacles measured against the generated obstacles of the drive."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from hypood_ros.apps.demo.pictures import project
from hypood_ros.apps.demo.recorded import Reported
from hypood_ros.apps.demo.settings import MASK_PARAMS, TRACKS
from hypood_ros.defaults import default


class ObstacleMeasure:
    """The node's mask and its reported obstacles against the generated obstacles, on the frames with any:
    SMIYC component metrics of both tracks, each obstacle found or missed with its true range, range errors
    and false obstacles (`hypood_ros.evaluation.obstacles`), pixel recall and false alarms inside the node's
    region of interest (recomputed from its recorded labels with the params file's roi settings)."""

    def __init__(self, first, params: Dict[str, object], reports: Dict[int, List[Reported]],
                 ego: Optional[np.ndarray] = None) -> None:
        from hypood_ros.evaluation.components import ComponentTally
        from hypood_ros.evaluation.obstacles import ObstacleTally
        from hypood_ros.geometry import CameraModel, CameraPose

        fx, cx, cy = first.intrinsics
        height, width = first.rgb.shape[:2]
        self.camera = CameraModel(width, height, fx, fx, cx, cy)  # the bag's camera_info
        self.pose = CameraPose.from_parameters(first.camera_height)  # what the node is given
        self.settings = {name: params.get(name, default(name)) for name in MASK_PARAMS}
        self.params = params
        self.ego = ego  # the bonnet, as the node was given it
        self.reports = reports
        self.tracks = {track: ComponentTally() for track in TRACKS}
        self.tally = ObstacleTally()
        self.region = np.zeros(4, np.int64)  # OOD flagged, OOD, in-distribution flagged, in-distribution
        self.without_markers = 0

    def _region(self, labels: np.ndarray) -> Optional[np.ndarray]:
        from hypood_ros.geometry import corridor_mask
        from hypood_ros.roi import GEOMETRY_MODES, region_of_interest

        mode = self.settings["roi"]
        corridor = None
        if mode in GEOMETRY_MODES:
            p = {n: self.params.get(n, default(n)) for n in ("corridor_half_width", "corridor_height",
                                                               "corridor_min_range", "max_range")}
            corridor = corridor_mask(self.camera, self.pose, p["corridor_half_width"], p["max_range"],
                                     p["corridor_height"], p["corridor_min_range"])
        return region_of_interest(mode, labels, corridor, int(self.settings["roi_margin"]),
                                  bool(self.settings["roi_drop_known"]), self.ego)

    def add(self, f, stamp: int, mask: np.ndarray, labels: np.ndarray):
        """One frame with generated obstacles; returns the missed ones' (bounding box, true range)."""
        from hypood_ros.evaluation.components import TRACK_SIZES, instances, segment_metrics
        from hypood_ros.evaluation.obstacles import KnownObstacle, Report, match_reports, obstacle_sious

        for track, label in (("smiyc-anomaly", f.ood_label), ("smiyc-obstacle", f.road_label)):
            self.tracks[track].add(segment_metrics(*instances(mask, label, *TRACK_SIZES[track])))
        gt = f.ood_label
        region = self._region(labels)
        inside = np.ones(gt.shape, bool) if region is None else region
        self.region += [int((mask & inside & (gt == 1)).sum()), int((inside & (gt == 1)).sum()),
                        int((mask & inside & (gt == 0)).sum()), int((inside & (gt == 0)).sum())]
        if stamp not in self.reports:
            self.without_markers += 1  # a frame whose ood/markers did not arrive: no obstacle bookkeeping
            return []
        sious = obstacle_sious(mask, f.road_label, f.instances, TRACK_SIZES["smiyc-obstacle"])
        truth = {a.id: a for a in f.anomalies if a.id in sious}
        reported = self.reports[stamp]
        uv = project(self.camera, self.pose, np.array([[r.x, r.y, 0.0] for r in reported]).reshape(-1, 3))
        record = self.tally.add(f.index, [KnownObstacle(a.id, a.range, a.contact_visible) for a in truth.values()],
                                sious, [Report(r.range, *p) for r, p in zip(reported, uv)],
                                match_reports(uv, f.instances))
        missed = []
        for row in record["obstacles"]:
            a = truth[row["id"]]
            row.update(shape=a.shape, dx=a.dx, dz=a.dz, pixels=a.pixels)
            if not row["found"]:
                ys, xs = np.nonzero(f.instances == a.id)
                missed.append(((int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())), a.range))
        return missed

    def summary(self) -> dict:
        flagged_ood, ood, flagged_id, id_ = self.region.tolist()
        counts = self.tally.summary()
        return {
            "source": "recorded ood/mask and ood/markers on the frames with generated obstacles, the node given "
                      "the bag's camera_info and the generated camera's pose",
            "components": {track: self.tracks[track].summary() for track in TRACKS},
            "region": {"roi": self.settings["roi"], "roi_margin": self.settings["roi_margin"],
                       "mask_recall": flagged_ood / ood if ood else None,
                       "mask_false_positive_rate": flagged_id / id_ if id_ else None,
                       "anomaly_pixels_inside": ood, "other_pixels_inside": id_,
                       "source": "the region recomputed from the recorded semantic/labels (hypood_ros.roi)"},
            "frames_without_markers": self.without_markers,
            **counts,
            "per_frame": self.tally.frames,
        }
