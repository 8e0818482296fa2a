"""Where to search next: priors from /initialpose, GNSS or the last fix moved by odometry, and the switch
between a wide search and tracking (AMCL-like behaviour, without ROS).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.types import Estimate, SearchWindow


class State(str, Enum):
    WAITING = "waiting for a prior"
    SEARCHING = "wide search"
    TRACKING = "tracking"


@dataclass(frozen=True)
class TrackerConfig:
    search_radius_m: float = 20.0
    search_yaw_deg: float = 10.0  # wide search when the prior's heading is known (initial pose)
    tracking_radius_m: float = 6.0
    tracking_yaw_deg: float = 6.0
    confident: float = 0.5  # confidence that switches to tracking
    publish_min: float = 0.2  # below this nothing is published
    lost_after: int = 3  # consecutive unconfident fixes before going back to a wide search


@dataclass(frozen=True)
class Prior:
    pose: Pose2D
    window: SearchWindow
    source: str


class Tracker:
    def __init__(self, cfg: TrackerConfig | None = None):
        self.cfg = cfg or TrackerConfig()
        self.state = State.WAITING
        self._anchor: Pose2D | None = None  # map pose of base_link at _anchor_odom
        self._anchor_odom: Pose2D | None = None
        self._yaw_known = False
        self._source = ""
        self._misses = 0

    def set_initial_pose(self, pose: Pose2D, yaw_std_rad: float = 0.0) -> None:
        """RViz /initialpose or a parameter: restart a wide search there."""
        self._reset(pose, yaw_known=yaw_std_rad < np.radians(30), source="initial pose")

    def set_gnss(self, x: float, y: float) -> None:
        """A GNSS fix: a position prior without heading, used unless tracking."""
        if self.state != State.TRACKING:
            yaw = self._anchor.yaw if self._anchor else 0.0
            self._reset(Pose2D(x, y, yaw), yaw_known=self._yaw_known, source="GNSS")

    def relocalize(self) -> bool:
        """Back to a wide search around the last known pose; False when there is none."""
        if self._anchor is None:
            return False
        self._reset(self._anchor, yaw_known=self._yaw_known, source="relocalize")
        return True

    def _reset(self, pose: Pose2D, yaw_known: bool, source: str) -> None:
        self._anchor, self._anchor_odom, self._yaw_known, self._source = pose, None, yaw_known, source
        self.state, self._misses = State.SEARCHING, 0

    def prior(self, odom: Pose2D | None) -> Prior | None:
        """The prior for a scan taken when odom->base_link was `odom` (None when there is no odometry)."""
        if self._anchor is None:
            return None
        pose = self._anchor
        if odom is not None and self._anchor_odom is not None:
            pose = self._anchor.compose(self._anchor_odom.inverse().compose(odom))
        c = self.cfg
        if self.state == State.TRACKING:
            return Prior(pose, SearchWindow(c.tracking_radius_m, np.radians(c.tracking_yaw_deg)), "tracking")
        yaw = np.radians(c.search_yaw_deg) if self._yaw_known else np.pi
        return Prior(pose, SearchWindow(c.search_radius_m, yaw), self._source)

    def update(self, est: Estimate, odom: Pose2D | None) -> bool:
        """Take a new estimate; returns whether it is good enough to publish."""
        c = self.cfg
        if est.confidence >= c.confident:
            self._anchor, self._anchor_odom = est.pose, odom
            self._yaw_known, self.state, self._misses = True, State.TRACKING, 0
            return True
        if self.state == State.TRACKING:
            self._misses += 1
            if self._misses >= c.lost_after:  # lost: wide search around where we were
                self.state = State.SEARCHING
        if est.confidence >= c.publish_min:
            self._anchor, self._anchor_odom = est.pose, odom
            return True
        return False
