"""One scan through the localizer as the node runs it, without ROS: odometry in, evidence fused, and the decision
whether the result may be published. `eval --protocol sequence` drives the same class, so what it measures is
what the node publishes.

- `FilteredLocalizer`: the temporal filter (filter.py). Each scan: predict with the odometry increment since the
  previous scan (from the odom -> base pose the caller reads), score the window the belief asks for behind the
  support checks (support.py), fuse it, and publish the posterior mode and covariance only when the filter is
  converged, the posterior is sound and its confidence reaches `publish_min`. Without odometry (None from the
  start) the prediction is a random walk. A scan whose odometry is missing in a stream that had it (a TF sample
  lost) is skipped: the next increment is taken from the last known odometry, so the motion across the gap is
  counted once; after MAX_ODOM_GAP such scans in a row the stream counts as gone (random walk until it returns).
- `SingleScanLocalizer`: the tracker of tracker.py (every scan localized alone), for `filter.enabled: false`.

Both are thread-safe for one scanning thread and callbacks that set priors: the slow part (the volume) runs
outside the lock, and a volume scored before a new prior arrived is not fused into it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.filter import BayesFilter, FilterConfig, State, format_confidence
from translocnet_ros.localization.support import SupportedLocalizer, SupportLimits, estimate_problem
from translocnet_ros.localization.tracker import Prior, Tracker, TrackerConfig
from translocnet_ros.localization.types import Estimate, ImagerySource, LocalizationError, SearchWindow

NO_METHOD = "no localization method (its set-up failed): the scan is not scored, priors are kept"
WAITING_FOR_PRIOR = "waiting for a prior: publish /initialpose, a GNSS fix on gnss/fix, or set initial_pose"
MAX_ODOM_GAP = 5  # scans in a row without the odometry a stream had before it counts as gone


@dataclass
class Step:
    """What one scan did: the estimate after it, whether it may be published and why not."""

    estimate: Estimate | None
    publish: bool
    reason: str = ""  # why it is not published ("" when it is)
    fused: bool = False  # the scan gave evidence (a volume fused, an estimate made): it counts as localized
    error: str = ""  # why the scan gave no evidence, when it did not
    likelihood: np.ndarray | None = None  # north-up image to show (the posterior, or the scan's likelihood)
    latency_ms: float = float("nan")  # the scan's whole step: volume + filter
    filter_ms: float = float("nan")  # the filter's own update
    state: str = ""  # the engine's state after the scan (filter State name, or the tracker's)


def odometry_increment(previous: Pose2D | None, current: Pose2D | None) -> Pose2D | None:
    """The motion between two odom -> base poses, in the earlier base frame; the identity for the first one,
    None when the current one is unknown."""
    if current is None:
        return None
    return Pose2D(0.0, 0.0, 0.0) if previous is None else previous.inverse().compose(current)


class FilteredLocalizer:
    """The Bayes filter behind the support checks, with the publish decision (see the module docstring)."""

    def __init__(self, method, cfg: FilterConfig | None = None, publish_min: float = 0.0):
        """method: a volume method (TransLocNet, NCC), wrapped in SupportedLocalizer unless it already is;
        None while the node has no method (nothing is scored then, priors are still kept)."""
        if method is not None and not isinstance(method, SupportedLocalizer):
            method = SupportedLocalizer(method)
        self.method = method
        scale = getattr(method, "filter_covariance_scale", 1.0)
        self.filter = BayesFilter(self._for_method(cfg), scale, getattr(method, "filter_yaw_scale", scale))
        self.publish_min = publish_min
        self._odom: Pose2D | None = None  # odom -> base at the last scan that had it
        self._odom_gap = 0  # scans in a row whose odometry was missing
        self._gnss_far = 0  # GNSS fixes in a row far from a converged belief
        self._fused = False  # some scan's evidence is in the belief (relocalize needs one)
        self._generation = 0  # bumped by every prior, so a volume scored before it is not fused after it
        self._lock = threading.Lock()

    # ---- configuration and state --------------------------------------------------------------------------
    def configure(self, cfg: FilterConfig, publish_min: float) -> None:
        """Live parameters: the belief is kept (new odometry calibration priors redraw its calibration); a new
        particle count applies from the next (re)seed."""
        with self._lock:
            old = self.filter.cfg.motion
            self.filter.cfg, self.publish_min = self._for_method(cfg), publish_min
            new = self.filter.cfg.motion
            if not np.array_equal(old.calibration_sd, new.calibration_sd):
                self.filter.reset_calibration()

    def _for_method(self, cfg: FilterConfig | None) -> FilterConfig:
        """Relocation trusts single-scan peaks: only for methods whose volumes are calibrated likelihoods
        (NCC's peak away from its belief for up to 17 scans in a row while it tracks: relocating on them took
        its sequence mean on the test towns from 1.65 to 14.8 m)."""
        cfg = cfg or FilterConfig()
        if getattr(self.method, "calibrated_volumes", False):
            return cfg
        return replace(cfg, relocate_scans=0)

    @property
    def waiting(self) -> bool:
        return self.filter.state == State.WAITING

    @property
    def state_text(self) -> str:
        return self.filter.state.value

    def diagnostics(self) -> dict[str, str]:
        f = self.filter
        with self._lock:  # the worker thread replaces the particles and their weights one after the other
            est, (scale, drift) = f.estimate, f.calibration()
        return {
            "filter": "on",
            "filter state": f.state.value,
            "filter reason": f.reason,
            "filter confidence": "-" if est is None else format_confidence(est.confidence),
            "filter support": "-" if not np.isfinite(f.support) else f"{f.support:.1f}",
            "filter divergences": str(f.divergences),
            # where a young belief may go: the last prior's window moved by the odometry, until it is established
            "filter prior region": "released" if f.prior_region_m is None else f"+-{f.prior_region_m:.0f} m",
            "odometry scale": f"{scale:.4f}",  # learned: the factor on the reported translation
            "odometry drift deg/m": f"{np.degrees(drift):+.3f}",  # learned: added to the reported heading
            # how far the posterior's confidence is trusted: the last scans' median confidence against the
            # confidence the method shows on imagery it reads well
            "filter readability": f"{f.readability:.2f}",
            # how far the last scans back the belief: the median mass they put near it, against the same bar
            "filter backing": f"{f.backing:.2f}",
            "filter update ms": "-" if not np.isfinite(f.update_ms) else f"{f.update_ms:.1f}",
        }

    def prior(self) -> Prior | None:
        """Where the next scan will be searched (None before any prior)."""
        with self._lock:
            ask = self.filter.search_window()
            return None if ask is None else Prior(ask[0], ask[1], self.filter.reason)

    # ---- priors ---------------------------------------------------------------------------------------------
    def seed(self, pose: Pose2D, window: SearchWindow, reason: str) -> None:
        """A prior with an explicit window (the sequence protocol's first prior)."""
        with self._lock:
            self._generation += 1
            self.filter.seed(pose, window, reason)

    def set_initial_pose(self, pose: Pose2D, yaw_std_rad: float = 0.0) -> None:
        """/initialpose or the initial_pose parameter: a wide search there (all headings when its yaw is
        uncertain beyond 30 deg)."""
        with self._lock:
            self._generation += 1
            self.filter.seed_initial_pose(pose, yaw_known=yaw_std_rad < np.radians(30))

    def set_gnss(self, x: float, y: float) -> bool:
        """A GNSS fix re-seeds the filter when it has no belief yet, has diverged, or believes in a place
        farther than a wide search from the fix; a fix inside the belief's own search leaves the evidence
        gathered so far in place (re-seeding on every fix would fuse nothing). A converged belief is re-seeded
        only when gnss_disagree_fixes fixes in a row lie that far from it: one fix tens of metres off is
        multipath, a belief that every fix contradicts for seconds is lost (on a real orthophoto the filter
        converged 50 m off with confidence 0.96, BENCHMARKS.md `real-sequence`). Returns whether it re-seeded."""
        with self._lock:
            f = self.filter
            near = f.mode is not None and max(abs(x - f.mode.x), abs(y - f.mode.y)) <= f.cfg.search_radius_m
            overrule = ""
            if f.state == State.CONVERGED:
                self._gnss_far = 0 if near else self._gnss_far + 1
                if not f.cfg.gnss_disagree_fixes or self._gnss_far < f.cfg.gnss_disagree_fixes:
                    return False
                overrule = (
                    f"GNSS: {self._gnss_far} fixes in a row more than {f.cfg.search_radius_m:.0f} m from the "
                    "converged belief"
                )
            elif f.state == State.SEARCHING and near:
                return False
            self._gnss_far = 0
            self._generation += 1
            return f.seed_gnss(x, y, overrule)

    def relocalize(self) -> str:
        """A wide search around the current belief; why not ("" on success)."""
        with self._lock:
            f = self.filter
            if not self._fused or f.mode is None:
                if f.state == State.WAITING:
                    return "no pose estimated yet: give /initialpose, a GNSS fix or initial_pose first"
                return f"no pose estimated yet: already searching around the {f.reason}"
            c = f.cfg
            self._generation += 1
            f.seed(f.mode, SearchWindow(c.search_radius_m, np.radians(c.search_yaw_deg)), "relocalize")
            return ""

    # ---- one scan -------------------------------------------------------------------------------------------
    def step(self, scan: np.ndarray, imagery: ImagerySource, odom: Pose2D | None) -> Step:
        """Predict with the odometry since the previous scan (odom: odom -> base at this scan, None when
        unknown), fuse this scan, decide whether to publish."""
        t0 = time.perf_counter()
        with self._lock:
            f = self.filter
            if odom is None and self._odom is not None:  # a gap in an odometry stream
                self._odom_gap += 1
                if self._odom_gap < MAX_ODOM_GAP:
                    why = "no odometry at this scan's stamp: scan skipped (the next increment spans the gap)"
                    f.no_evidence(why)
                    return Step(f.estimate, False, why, error=why, state=f.state.name)
                self._odom = None  # the stream is gone: random walk from here
            self._odom_gap = 0
            increment = odometry_increment(self._odom, odom)
            self._odom = odom
            f.predict(increment)
            ask = f.search_window()
            generation = self._generation
        if ask is None:
            return Step(None, False, WAITING_FOR_PRIOR, error="no prior", state=f.state.name)
        if self.method is None:
            return Step(f.estimate, False, NO_METHOD, error="no method", state=f.state.name)
        try:
            volume = self.method.score_volume(scan, imagery, *ask)
        except LocalizationError as exc:
            with self._lock:
                f.no_evidence(str(exc))
                return Step(
                    f.estimate,
                    False,
                    f"localization failed: {exc}",
                    error=str(exc),
                    latency_ms=1e3 * (time.perf_counter() - t0),
                    state=f.state.name,
                )
        with self._lock:
            if generation != self._generation:  # a new prior arrived while the volume was scored
                return Step(
                    f.estimate,
                    False,
                    "a new prior arrived while the scan was scored: scan not fused",
                    error="superseded by a new prior",
                    state=f.state.name,
                )
            est = f.update(volume, self.method.temperature)
            self._fused = True
            image = f.posterior_image(ask[0], ask[1].radius_m, volume.m_per_px)
            step = Step(
                est,
                False,
                fused=True,
                likelihood=image,
                filter_ms=f.update_ms,
                state=f.state.name,
            )
            step.reason = self._why_not(est, *ask)
            step.publish = not step.reason
        step.latency_ms = 1e3 * (time.perf_counter() - t0)
        return step

    def _why_not(self, est: Estimate, centre: Pose2D, window: SearchWindow) -> str:
        """Why the posterior must not be published, or ""."""
        limits = self.method.limits if self.method is not None else SupportLimits()
        problem = estimate_problem(est, centre, window, limits)
        if problem:
            return f"posterior not trusted: {problem}"
        if est.confidence < self.publish_min:
            return f"low confidence {format_confidence(est.confidence)} (< confidence_publish {self.publish_min:g})"
        if self.filter.state != State.CONVERGED:
            return f"filter {self.filter.state.value} ({self.filter.reason})"
        if est.confidence < self.filter.cfg.converged_confidence:  # converged, but on scans read weakly
            return (
                f"confidence {format_confidence(est.confidence)} < {self.filter.cfg.converged_confidence:g} "
                f"({self.filter.weak_reading()})"
            )
        return ""


class SingleScanLocalizer:
    """Every scan localized alone around the tracker's prior (filter.enabled: false): the node's behaviour
    before the filter, behind the same interface."""

    def __init__(self, method, cfg: TrackerConfig | None = None):
        if method is not None and not isinstance(method, SupportedLocalizer):
            method = SupportedLocalizer(method)
        self.method = method
        self.tracker = Tracker(cfg)
        self._lock = threading.Lock()

    def configure(self, cfg: TrackerConfig) -> None:
        with self._lock:
            self.tracker.cfg = cfg

    @property
    def waiting(self) -> bool:
        return self.tracker.state.name == "WAITING"

    @property
    def state_text(self) -> str:
        return self.tracker.state.value

    def diagnostics(self) -> dict[str, str]:
        return {"filter": "off"}

    def prior(self) -> Prior | None:
        with self._lock:
            return self.tracker.prior(None)

    def set_initial_pose(self, pose: Pose2D, yaw_std_rad: float = 0.0) -> None:
        with self._lock:
            self.tracker.set_initial_pose(pose, yaw_std_rad)

    def set_gnss(self, x: float, y: float) -> bool:
        with self._lock:
            searching = self.tracker.state.name != "TRACKING"
            self.tracker.set_gnss(x, y)
            return searching

    def relocalize(self) -> str:
        with self._lock:
            return self.tracker.relocalize()

    def step(self, scan: np.ndarray, imagery: ImagerySource, odom: Pose2D | None) -> Step:
        t0 = time.perf_counter()
        with self._lock:
            prior = self.tracker.prior(odom)
        if prior is None:
            return Step(None, False, WAITING_FOR_PRIOR, error="no prior", state="WAITING")
        try:
            checked = self.method.localize(scan, imagery, prior.pose, prior.window)
        except LocalizationError as exc:
            return Step(
                None, False, f"localization failed: {exc}", error=str(exc), state=self.tracker.state.name
            )
        est = checked.estimate
        with self._lock:
            decision = self.tracker.update(est, odom)
        step = Step(
            est,
            False,
            fused=True,
            likelihood=est.likelihood,
            latency_ms=1e3 * (time.perf_counter() - t0),
            state=self.tracker.state.name,
        )
        if checked.problem:
            step.reason = f"unsupported input, confidence capped to 0: {checked.problem}"
        elif not decision.publish:
            step.reason = decision.reason
        step.publish = not step.reason
        return step
