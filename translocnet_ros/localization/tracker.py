"""Where to search next: priors from /initialpose, GNSS or the last fix moved by odometry, and the switch
between a wide search and tracking (AMCL-like behaviour, without ROS).

While tracking with odometry, a fix that disagrees with the odometry-moved last fix beyond their joint
covariance is neither published nor taken as the next anchor until a few consecutive fixes agree with it:
one bad scan cannot move the anchor, and the following good scans are still searched around the right place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from translocnet_ros.geo.crs import wrap_angle
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
    gate_chi2: float = 16.3  # 3-dof chi-square at 99.9%: fix vs. odometry prediction
    confirmations: int = 3  # consecutive mutually consistent fixes that overrule the prediction
    odom_error: float = 0.05  # odometry position error per metre travelled (wheel odometry: 2-5%)
    min_sigma_m: float = 0.5  # floors: the model's covariance must not make the gate a needle's eye
    min_sigma_yaw_deg: float = 2.0


@dataclass(frozen=True)
class Prior:
    pose: Pose2D
    window: SearchWindow
    source: str


@dataclass(frozen=True)
class Decision:
    publish: bool
    reason: str = ""  # why not, when publish is False


@dataclass(frozen=True)
class _Fix:
    pose: Pose2D
    covariance: np.ndarray
    odom: Pose2D | None


class Tracker:
    def __init__(self, cfg: TrackerConfig | None = None):
        self.cfg = cfg or TrackerConfig()
        self.state = State.WAITING
        self._anchor: Pose2D | None = None  # map pose of base_link at _anchor_odom
        self._anchor_odom: Pose2D | None = None
        self._anchor_cov = np.zeros((3, 3))
        self._yaw_known = False
        self._source = ""
        self._misses = 0
        self._estimated = False  # whether the anchor ever came from an estimate
        self._candidates: list[_Fix] = []  # consecutive fixes that disagree with the prediction

    def set_initial_pose(self, pose: Pose2D, yaw_std_rad: float = 0.0) -> None:
        """RViz /initialpose or a parameter: restart a wide search there."""
        self._reset(pose, yaw_known=yaw_std_rad < np.radians(30), source="initial pose")

    def set_gnss(self, x: float, y: float) -> None:
        """A GNSS fix: a position prior without heading, used unless tracking."""
        if self.state != State.TRACKING:
            yaw = self._anchor.yaw if self._anchor else 0.0
            self._reset(Pose2D(x, y, yaw), yaw_known=self._yaw_known, source="GNSS")

    def relocalize(self) -> str:
        """Back to a wide search around the last estimated pose; why not ("" on success)."""
        if not self._estimated:
            if self.state == State.SEARCHING:
                return f"no pose estimated yet: already searching around the {self._source}"
            return "no pose estimated yet: give /initialpose, a GNSS fix or initial_pose first"
        self._reset(self._anchor, yaw_known=self._yaw_known, source="relocalize")
        return ""

    def _reset(self, pose: Pose2D, yaw_known: bool, source: str) -> None:
        self._anchor, self._anchor_odom, self._yaw_known, self._source = pose, None, yaw_known, source
        self.state, self._misses, self._candidates = State.SEARCHING, 0, []

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

    def update(self, est: Estimate, odom: Pose2D | None) -> Decision:
        """Take a new estimate; whether it is good enough to publish, and why not."""
        c = self.cfg
        if est.confidence < c.publish_min:
            self._miss()
            return Decision(
                False, f"low confidence {est.confidence:.2f} (< confidence_publish {c.publish_min:g})"
            )
        fix = _Fix(est.pose, np.asarray(est.covariance, float), odom)
        if self.state == State.TRACKING and odom is not None and self._anchor_odom is not None:
            anchor = _Fix(self._anchor, self._anchor_cov, self._anchor_odom)
            distance = self._distance(anchor, fix)
            if distance is not None:  # disagrees with the odometry prediction
                if self._candidates and self._distance(self._candidates[-1], fix) is not None:
                    self._candidates = []  # nor does it agree with the previous outlier
                self._candidates.append(fix)
                if len(self._candidates) < c.confirmations:
                    return Decision(
                        False,
                        f"fix {distance[0]:.1f} m / {np.degrees(distance[1]):.0f} deg from the odometry "
                        f"prediction: held until {c.confirmations} consistent fixes "
                        f"({len(self._candidates)} so far)",
                    )
        self._candidates = []
        self._anchor, self._anchor_odom, self._anchor_cov = fix.pose, fix.odom, fix.covariance
        self._estimated = True
        if est.confidence >= c.confident:
            self._yaw_known, self.state, self._misses = True, State.TRACKING, 0
        else:
            self._miss()
        return Decision(True)

    def _miss(self) -> None:
        if self.state == State.TRACKING:
            self._misses += 1
            if self._misses >= self.cfg.lost_after:  # lost: wide search around where we were
                self.state = State.SEARCHING

    def _distance(self, before: _Fix, after: _Fix) -> tuple[float, float] | None:
        """(metres, radians) between `after` and `before` moved by odometry when that is outside the gate of
        their joint covariance plus odometry drift; None when they agree."""
        step = before.odom.inverse().compose(after.odom)
        pred = before.pose.compose(step)
        c = self.cfg
        travelled = float(np.hypot(step.x, step.y))
        drift = np.diag(
            [
                (c.odom_error * travelled + c.min_sigma_m) ** 2,
                (c.odom_error * travelled + c.min_sigma_m) ** 2,
                (np.radians(1.0) * travelled + np.radians(c.min_sigma_yaw_deg)) ** 2,
            ]
        )
        v = np.array([after.pose.x - pred.x, after.pose.y - pred.y, wrap_angle(after.pose.yaw - pred.yaw)])
        s = before.covariance + after.covariance + drift
        if float(v @ np.linalg.solve(s, v)) <= c.gate_chi2:
            return None
        return float(np.hypot(v[0], v[1])), float(abs(v[2]))
