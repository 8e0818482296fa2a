"""Temporal fusion: a Bayes filter over the vehicle's (x, y, yaw) that predicts with odometry and updates with
every scan's likelihood volume (AMCL-like, without ROS; the node and `eval --protocol sequence` share it).

Particles, not a histogram grid at the volume's resolution, because
- each scan's volume lies on its own grid (centred on that scan's prior, 1 m cells for TransLocNet): a grid
  belief would be resampled onto it at every scan, a half-cell blur per step that accumulates, while a particle
  is moved by the odometry exactly and reads the volume at its own continuous pose (cubic spline), so the fused
  estimate is not tied to the 1 m cells;
- under a yaw hypothesis the odometry moves a grid belief by a different sub-cell shift per yaw layer; a particle
  just composes its own pose with the increment;
- the cost is set by the particle count, not by the window, so a lost filter can search a 60 m window with the
  same update cost, and several hypotheses (a row of identical houses) survive as clusters.
Particles are seeded from a volume (the prior's window is uniform, so the first posterior is that volume),
which puts them where the evidence is instead of spreading them blindly.

Each volume is tempered (consecutive scans see the same street, their errors are not independent) and mixed with
a uniform floor, so one bad scan lowers the true pose's weight but cannot remove it. The belief recentres with
the vehicle: every scan is scored in a window around the predicted mode, sized to cover the particles. The filter
diverges when the evidence keeps disagreeing with the belief (scans that do single out some poses put no more than
a few times the uniform density where the belief is: at a wrong place TransLocNet's volumes are flat or peak
elsewhere, at the right one they give it hundreds of times the uniform density), and then falls back to a wide
search seeded from the next scan.

Particles can only be reweighted, never moved by a scan, so a belief that has lost the vehicle cannot follow
evidence for poses it has no particles at. After a kidnapping the odometry reported (a 50 m jump), the motion noise
spreads the particles so wide that the next scans are scored in the lost window: their volumes single out the true
pose, 50 m away, at thousands of times the uniform density, while the wrong place still gets a few times it (a
street alike), enough to count as agreeing; the particles stayed there and converged (TransLocNet on the val
towns: 17 to 35+ frames until the disagreement test fired). So the filter also relocates: when relocate_scans
scans in a row put relocate_ratio times more density at their peak than at the belief, each peak within
relocate_agree_m of the previous one moved by the odometry (one place keeps being singled out), the belief is
re-seeded from the last scan's volume around that place (its window already covers it; drawn from the whole
volume, the belief settled on broad look-alikes, 39 m off in a town of halls). On the val towns, while
TransLocNet tracked, the ratio reached 6 for at most 2 scans in a row, also with 20% bad scans (a scan from
elsewhere alone reaches up to 800); after the kidnapping it was 7 to 20000 for each of the first 4 scans. NCC's
volumes peak away from its belief for up to 17 scans in a row (it is often lost), hence the agreement of the
peaks.

Relocation and the wide search trust the scans over the prior; on real orthophotos, where the model also
singles out look-alikes, that walked a young belief away step by step: helsinki-dev, a ray-cast drive, the first
scans put it 27 m off (inside the prior's window), two relocations to look-alikes 50 m from where the prior and
the odometry allowed, where it converged with confidence 0.96. So the last external prior (initial pose, GNSS,
relocalize) stays in force as a region: its window moved by the odometry, grown by anchor_growth_per_m of the
distance driven (the odometry's own error). Until the belief has held converged for anchor_release_scans scans
in a row, relocations go only to places inside it and a divergence's wide search covers it, no farther; an
established belief answers for itself (a kidnapping the odometry missed can take it anywhere). Established means
converged on scans read as on familiar imagery (readability 1, evidence_readability()): on real orthophotos the
model read weakly, a belief converged on look-alikes, was released, and relocations then followed look-alikes
100 m away (helsinki-dev, the unadapted model, BENCHMARKS.md `real-sequence`). So where relocation is on, scans
read weakly never release the region, and when an established belief's scans start to read weakly it gets one
again: a prior's window around where it is, moved by the odometry from then on.

Each particle also carries its own odometry calibration: a scale on the reported translation and a heading drift
per metre. A wheel odometry errs systematically (tyre radius, load, a yaw-rate bias), and a filter whose motion
model trusts it runs off the evidence by the accumulated error: with the odometry of DESIGN.md section 6 (2%
long, +0.1 deg per metre) the belief ran ahead of TransLocNet's single-frame estimates on the synthetic test towns
by 0.22 m on average. Particles whose calibration matches the vehicle keep agreeing with the scans and survive
resampling, so the belief learns the calibration as it drives (a small random walk keeps it adaptable) and keeps
it through re-seeds: it belongs to the vehicle, not to the place (a live change of its priors draws it anew). The
drift is per metre driven forwards (signed: reversing turns the other way, as a wheel-radius mismatch does). It
matters most where scans give no evidence: after 40 m without scans the belief is about half as far off as one
moving on the raw odometry (test_filter).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.special import logsumexp

from translocnet_ros.geo.crs import wrap_angle
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.decode import NEAR_M, NEAR_RAD, decode_parts, mass_near
from translocnet_ros.localization.types import (
    Estimate,
    ScoreVolume,
    SearchWindow,
)

SCALE_LIMITS = (0.5, 1.5)  # an odometry scale outside these is a broken odometry, not a calibration


class State(str, Enum):
    WAITING = "waiting for a prior"
    SEARCHING = "searching"
    CONVERGED = "converged"
    DIVERGED = "diverged: wide search"


@dataclass(frozen=True)
class MotionNoise:
    """Standard deviation of one odometry increment's random error, per axis of base_link: trans_per_m * |d| +
    trans_m in x and y, yaw_deg_per_m * |d| + yaw_deg in yaw; wider than a wheel odometry's alone, as the scans'
    errors are correlated. Its systematic errors (scale, heading drift) are learned per particle, from priors of
    scale_sd and drift_deg_per_m_sd."""

    trans_per_m: float = 0.05
    trans_m: float = 0.02
    yaw_deg_per_m: float = 0.2
    yaw_deg: float = 0.3
    scale_sd: float = 0.03  # prior sd of the odometry's scale error (0 with drift_deg_per_m_sd: not learned)
    drift_deg_per_m_sd: float = 0.2  # prior sd of its heading drift per metre travelled
    calibration_walk_per_m: float = 0.05  # random walk of both, as a share of their prior sd per sqrt(metre)

    @property
    def calibration_sd(self) -> np.ndarray:
        """Prior sd of (scale, drift in rad per metre)."""
        return np.array([self.scale_sd, np.radians(self.drift_deg_per_m_sd)])


@dataclass(frozen=True)
class FilterConfig:
    particles: int = 3000
    tempering: float = 0.5  # exponent on each scan's likelihood (scans of one street are correlated)
    uniform_floor: float = 0.05  # share of each likelihood spread uniformly: one bad scan cannot kill a pose
    # how far the belief's confidence is trusted (evidence_readability()): fully while the median single-scan
    # confidence of the last readable_window scans reaches readable_confidence, in proportion below (0: always);
    # 0.2 is half the val towns' median scan confidence in the tracking window (0.33-0.44)
    readable_confidence: float = 0.2
    readable_window: int = 20
    motion: MotionNoise = field(default_factory=MotionNoise)
    tracking_radius_m: float = 6.0  # window when the particles fit in it
    tracking_yaw_deg: float = 6.0
    search_radius_m: float = 20.0  # window of a prior (initial pose, GNSS) and of a wide belief
    search_yaw_deg: float = 10.0
    lost_radius_m: float = 60.0  # window after a divergence
    lost_yaw_deg: float = 15.0
    unknown_motion_m: float = 2.0  # per scan without odometry: random walk of this sd in x and y
    unknown_motion_deg: float = 5.0  # and in yaw (the scans alone must then keep up with the vehicle)
    converged_confidence: float = 0.5  # posterior mass within 1 m and 2 deg of the mode
    min_support: float = 3.0  # a scan backs the belief when its density there is this many x uniform
    diverge_window: int = 10  # diverged when, of the last diverge_window scans,
    diverge_count: int = 7  # this many disagreed
    relocate_ratio: float = 6.0  # a scan peaks elsewhere: peak density >= this x density at the belief (>= 1)
    relocate_scans: int = 4  # re-seed from the scan that makes this many such scans in a row (0: never),
    relocate_agree_m: float = 3.0  # each peak this close to the previous one moved by the odometry
    # the last prior's window moved by the odometry, growing by this share of the distance driven: where the
    # vehicle can be; relocations and wide searches stay inside it until the belief held converged on readable
    # scans for anchor_release_scans scans in a row (0: no such region)
    anchor_growth_per_m: float = 0.1
    anchor_release_scans: int = 10
    # GNSS fixes in a row farther than search_radius_m from a converged belief that re-seed it (0: ignored)
    gnss_disagree_fixes: int = 5
    seed: int = 0


def _circular_mean(yaw: np.ndarray, w: np.ndarray) -> float:
    return float(np.arctan2(np.sum(w * np.sin(yaw)), np.sum(w * np.cos(yaw))))


class BayesFilter:
    """Particles (x, y, yaw, odometry scale, heading drift per metre) with log-weights; a pending uniform region
    stands for a prior not yet seen by a scan."""

    def __init__(
        self, cfg: FilterConfig | None = None, covariance_scale: float = 1.0, yaw_scale: float | None = None
    ):
        """covariance_scale, yaw_scale: factors on the particles' position and yaw variances in the estimate,
        fitted on the val drives by `translocnet calibrate` (the method's filter_covariance_scale and
        filter_yaw_scale; yaw_scale None: the same as position): consecutive scans of one street err alike, so
        the fused particles are more certain of the position than the pose is, while their yaw spreads with the
        odometry's yaw noise more than the yaw errs."""
        self.cfg = cfg or FilterConfig()
        self.covariance_scale = covariance_scale
        self.yaw_scale = covariance_scale if yaw_scale is None else yaw_scale
        self.rng = np.random.default_rng(self.cfg.seed)
        self.state = State.WAITING
        self.reason = "no initial pose or GNSS fix yet"
        self.particles = np.empty((0, 5))
        self.logw = np.empty(0)
        self._calibration: np.ndarray | None = None  # (scale, drift) samples kept through a re-seed
        self.mode: Pose2D | None = None
        self.estimate: Estimate | None = None
        self.divergences = 0
        self.support = float("nan")  # the last scan's density at the belief, in units of a uniform density
        self.update_ms = float("nan")
        # single-scan confidences of the last scans: how well the method reads this imagery
        self._scan_confidences: deque[float] = deque(maxlen=max(1, self.cfg.readable_window))
        self.readability = 1.0
        # the mass each of the last scans put near the belief it was fused into: how far they back it
        self._scan_backing: deque[float] = deque(maxlen=max(1, self.cfg.readable_window))
        self.backing = 1.0
        self.posterior_mass = 0.0  # the particles' mass near the mode, before the readability
        self._region: SearchWindow | None = None  # uniform prior around self.mode, until the next scan
        self._agrees: deque[bool] = deque(maxlen=self.cfg.diverge_window)
        self._elsewhere = 0  # scans in a row whose volume peaked far above its density at the belief
        self._asked: SearchWindow | None = None  # the window last asked for
        # the last scan's peak when it lay elsewhere, moved by the odometry since
        self._peak: Pose2D | None = None
        # the last prior's region moved by the odometry (centre, half side in metres) until it is released
        self._anchor: Pose2D | None = None
        self._anchor_m = 0.0
        self._held = 0  # scans in a row the belief has been converged on readable scans

    # --- seeding -------------------------------------------------------------------------------------------
    def seed(
        self,
        pose: Pose2D,
        window: SearchWindow,
        reason: str,
        state: State = State.SEARCHING,
        external: bool = True,
    ) -> None:
        """A prior: uniform over the window around `pose`; the next scan's volume becomes the belief. The
        odometry calibration learned so far is kept. An external prior (initial pose, GNSS, a relocalize
        request; not the filter's own wide search) also becomes the region the belief must stay in."""
        if external and self.cfg.anchor_release_scans > 0:
            self._anchor, self._anchor_m = pose, window.radius_m
        self._held = 0
        self._keep_calibration(len(self.particles))
        self.particles, self.logw = np.empty((0, 5)), np.empty(0)
        self.mode, self._region, self.state, self.reason = pose, window, state, reason
        self._agrees.clear()
        self._elsewhere, self._peak = 0, None
        self.estimate = Estimate(pose, window.covariance(), 0.0)

    def seed_initial_pose(self, pose: Pose2D, yaw_known: bool = True) -> None:
        c = self.cfg
        yaw = np.radians(c.search_yaw_deg) if yaw_known else np.pi
        self.seed(pose, SearchWindow(c.search_radius_m, yaw), "initial pose")

    def seed_gnss(self, x: float, y: float, overrule: str = "") -> bool:
        """A GNSS fix re-seeds a filter that has not converged, or one whose converged belief the fixes
        `overrule` (the reason); heading from the belief when it has one. Returns whether it did."""
        if self.state == State.CONVERGED and not overrule:
            return False
        c = self.cfg
        known = self.mode is not None and self.state != State.WAITING and self._region is None
        yaw = self.mode.yaw if self.mode is not None else 0.0
        window = SearchWindow(c.search_radius_m, np.radians(c.search_yaw_deg) if known else np.pi)
        self.seed(Pose2D(x, y, yaw), window, overrule or "GNSS fix")
        return True

    # --- predict ----------------------------------------------------------------------------------------------
    def predict(self, increment: Pose2D | None) -> None:
        """Odometry: the vehicle moved by `increment` (x, y, yaw in the previous base_link); None = unknown
        (no odometry for this scan): a random walk of unknown_motion_m / unknown_motion_deg instead."""
        if self.mode is None:
            return
        c = self.cfg
        m, d = c.motion, 0.0
        unknown = increment is None
        if unknown:
            increment = Pose2D(0.0, 0.0, 0.0)
            sd = [c.unknown_motion_m] * 2 + [np.radians(c.unknown_motion_deg)]
        else:
            d = float(np.hypot(increment.x, increment.y))
            sd = [m.trans_per_m * d + m.trans_m] * 2 + [np.radians(m.yaw_deg_per_m * d + m.yaw_deg)]
        driven = float(np.copysign(d, increment.x))  # the drift grows with the distance driven forwards
        scale, drift = self.calibration()
        moved = Pose2D(scale * increment.x, scale * increment.y, increment.yaw + drift * driven)
        self.mode = self.mode.compose(moved)
        if self._peak is not None:
            self._peak = self._peak.compose(moved)
        if self._anchor is not None:
            self._anchor = self._anchor.compose(moved)
            self._anchor_m += c.unknown_motion_m if unknown else c.anchor_growth_per_m * d
        if len(self.particles) == 0:
            return
        p = self.particles
        walk = m.calibration_walk_per_m * np.sqrt(d) * m.calibration_sd
        if walk.any():
            p[:, 3:] += self.rng.normal(size=(len(p), 2)) * walk
            p[:, 3] = np.clip(p[:, 3], *SCALE_LIMITS)
        noise = self.rng.normal(size=(len(p), 3)) * sd
        lx, ly = p[:, 3] * increment.x + noise[:, 0], p[:, 3] * increment.y + noise[:, 1]
        c, s = np.cos(p[:, 2]), np.sin(p[:, 2])
        p[:, 0] += c * lx - s * ly
        p[:, 1] += s * lx + c * ly
        p[:, 2] = wrap_angle(p[:, 2] + increment.yaw + p[:, 4] * driven + noise[:, 2])

    def calibration(self) -> tuple[float, float]:
        """The belief's odometry calibration: (scale on the reported translation, heading drift in rad per metre
        driven forwards, added to the reported heading); the kept one between a re-seed and the next scan; (1, 0)
        before the first scan."""
        if len(self.particles):
            scale, drift = self._weights() @ self.particles[:, 3:]
        elif self._calibration is not None:
            scale, drift = self._calibration.mean(axis=0)
        else:
            return 1.0, 0.0
        return float(scale), float(drift)

    def reset_calibration(self) -> None:
        """Forget the learned calibration and draw it anew from the motion noise's priors (they changed)."""
        self._calibration = None
        if len(self.particles):
            self.particles[:, 3:] = self._calibration_samples(len(self.particles))

    # --- the window the next scan is scored in ------------------------------------------------------------------
    def search_window(self) -> tuple[Pose2D, SearchWindow] | None:
        """Centre and size of the next scan's volume: the pending region, else the smallest of the tracking,
        search and lost windows that holds 99% of the particles (a few sizes only, so a TorchScript model sees
        few input shapes), but not smaller than the last one while scans peak elsewhere (relocate_ratio): the
        particles may gather at a wrong place before relocate_scans such scans are counted. None before any
        prior."""
        if self.mode is None:
            return None
        if self._region is not None:
            return self.mode, self._region
        window = self._fitting_window()
        if self._elsewhere and self._asked is not None and self._asked.radius_m > window.radius_m:
            window = self._asked  # the evidence elsewhere is still counted: keep it in view until it decides
        self._asked = window
        return self.mode, window

    def _fitting_window(self) -> SearchWindow:
        c, w = self.cfg, self._weights()
        d = self.particles[:, :3] - [self.mode.x, self.mode.y, self.mode.yaw]
        reach = np.max(np.abs(d[:, :2]), axis=1)
        turn = np.abs(wrap_angle(d[:, 2]))
        r, t = _weighted_quantile(reach, w, 0.99), _weighted_quantile(turn, w, 0.99)
        if r + 2.0 <= c.tracking_radius_m and t + np.radians(1.0) <= np.radians(c.tracking_yaw_deg):
            return SearchWindow(c.tracking_radius_m, np.radians(c.tracking_yaw_deg))
        if r <= c.search_radius_m + 2.0 and t <= np.radians(c.search_yaw_deg + 1.0):  # a prior's own spread
            return SearchWindow(c.search_radius_m, np.radians(c.search_yaw_deg))
        return SearchWindow(c.lost_radius_m, np.radians(c.lost_yaw_deg))

    # --- update ----------------------------------------------------------------------------------------------
    def update(self, volume: ScoreVolume, temperature: float = 1.0) -> Estimate:
        """Fuse one scan's volume (logits / temperature, tempered, with the uniform floor)."""
        t0 = time.perf_counter()
        c = self.cfg
        logq = c.tempering * volume.logits / temperature
        logq = logq - logsumexp(logq)  # per-cell probability of the tempered volume
        fresh = self._region is not None or len(self.particles) == 0  # this scan makes the belief
        if c.readable_confidence > 0:
            self._scan_confidences.append(decode_parts(volume, temperature).confidence)
            backs = self._scan_confidences[-1] if fresh else mass_near(volume, self.mode, temperature)
            self._scan_backing.append(backs)
        floor = c.uniform_floor / logq.size
        relocated = False
        if fresh:
            self._sample_from(volume, logq, floor)
            self.support = float("nan")
        else:
            q = np.exp(_read_volume(volume, logq, self.particles))
            self.support = float(np.sum(self._weights() * q) * logq.size)
            peak = float(np.exp(logq.max()) * logq.size)
            if peak >= c.min_support:  # a flat volume backs nothing: not counted
                self._agrees.append(self.support >= c.min_support)
            self._count_elsewhere(volume, logq, peak)
            relocated = c.relocate_scans > 0 and self._elsewhere >= c.relocate_scans
            if relocated:
                self._relocate(volume, logq, floor, peak)
            else:
                self.logw = self.logw + np.log((1 - c.uniform_floor) * q + floor)
                self.logw -= self.logw.max()
                self._resample_if_degenerate()
        if not relocated:
            self._summarize()
            self._transition()
        self.update_ms = 1e3 * (time.perf_counter() - t0)
        return self.estimate

    def _count_elsewhere(self, volume: ScoreVolume, logq: np.ndarray, peak: float) -> None:
        """Scans in a row that put relocate_ratio x more density at their peak than at the belief, each peak
        within relocate_agree_m of the previous one moved by the odometry: one place keeps being singled out
        (a scan from elsewhere, or a method whose volumes peak at random, breaks the run)."""
        c = self.cfg
        if c.relocate_scans <= 0 or peak < c.relocate_ratio * max(self.support, 1.0):
            self._elsewhere, self._peak = 0, None
            return
        k, i, j = np.unravel_index(int(np.argmax(logq)), logq.shape)
        xs, ys = volume.cell_centres()
        at = Pose2D(float(xs[j]), float(ys[i]), float(wrap_angle(volume.prior.yaw + volume.yaw_offsets[k])))
        if not self._possible(at):  # a place the last prior and the odometry rule out
            self._elsewhere, self._peak = 0, None
            return
        last = self._peak
        agrees = last is not None and np.hypot(at.x - last.x, at.y - last.y) <= c.relocate_agree_m
        self._elsewhere = self._elsewhere + 1 if agrees else 1
        self._peak = at

    @property
    def prior_region_m(self) -> float | None:
        """Half side of the region the belief must stay in (the last prior's window moved by the odometry);
        None once released or without a prior."""
        return None if self._anchor is None else self._anchor_m

    def _possible(self, pose: Pose2D) -> bool:
        """Inside the last prior's region moved by the odometry (always, once the region is released)."""
        a = self._anchor
        return a is None or max(abs(pose.x - a.x), abs(pose.y - a.y)) <= self._anchor_m

    def _relocate(self, volume: ScoreVolume, logq: np.ndarray, floor: float, peak: float) -> None:
        """The evidence keeps singling out poses the particles do not cover (a kidnapping the odometry moved
        them away from, or a belief that wandered off): reweighting cannot reach poses without particles, so
        the belief is re-seeded from this scan's volume, which already covers its window."""
        self.divergences += 1
        why = (
            f"relocated: {self._elsewhere} scans in a row peaked elsewhere "
            f"(last {peak:.0f} x uniform there, {self.support:.1f} at the belief)"
        )
        self._sample_from(volume, logq, floor, near=self._peak)
        if self._scan_backing:  # the belief is made from this scan now: it backs it as it backs its own mode
            self._scan_backing[-1] = self._scan_confidences[-1]
        self._agrees.clear()
        self._held = 0
        self._elsewhere, self._peak = 0, None
        self._summarize()
        self.state, self.reason = State.DIVERGED, why  # the next scan's confidence decides convergence

    def no_evidence(self, why: str) -> None:
        """A scan that gave no volume (empty, outside the imagery): the belief keeps its prediction."""
        self.reason = f"scan skipped: {why}"
        if self.estimate is not None and self.mode is not None:
            self.estimate = Estimate(self.mode, self.estimate.covariance, self.estimate.confidence)

    def _sample_from(
        self, volume: ScoreVolume, logq: np.ndarray, floor: float, near: Pose2D | None = None
    ) -> None:
        """Particles drawn from the volume mixed with the floor, spread uniformly inside their cells. With `near`
        (a relocation), the volume's part is taken only within 2 x relocate_agree_m of that place: the place
        the scans kept singling out. A wide window's volume holds most of its mass away from its sharp peak
        (broad, yaw-ambiguous look-alikes), so a belief drawn from all of it may settle on a look-alike."""
        n, nk = self.cfg.particles, logq.shape[0]
        q = np.exp(logq)
        if near is not None:
            xs, ys = volume.cell_centres()
            q = q * (np.hypot(ys[:, None] - near.y, xs[None, :] - near.x) <= 2 * self.cfg.relocate_agree_m)
            q /= q.sum()
        p = (1 - self.cfg.uniform_floor) * q.ravel() + floor
        k, i, j = np.unravel_index(self.rng.choice(p.size, n, p=p / p.sum()), logq.shape)
        u = self.rng.uniform(-0.5, 0.5, size=(n, 3))
        step = np.gradient(volume.yaw_offsets) if nk > 1 else np.array([np.radians(1.0)])
        pr, m = volume.prior, volume.m_per_px
        self._keep_calibration(n)  # a relocation: the calibration stays the vehicle's
        self.particles = np.column_stack(
            [
                pr.x + (j + u[:, 0] - volume.centre_px) * m,
                pr.y - (i + u[:, 1] - volume.centre_px) * m,
                wrap_angle(pr.yaw + volume.yaw_offsets[k] + u[:, 2] * step[k]),
                self._calibration_samples(n),
            ]
        )
        self.logw = np.zeros(n)
        self._region = None

    def _keep_calibration(self, n: int) -> None:
        """Before the particles are replaced: n (scale, drift) pairs drawn from them by weight, for the next ones."""
        if len(self.particles):
            self._calibration = self._draw(self.particles[:, 3:], self._weights(), n)

    def _calibration_samples(self, n: int) -> np.ndarray:
        """n (scale, drift) pairs: the kept ones, else drawn from the motion noise's prior."""
        kept = self._calibration
        if kept is not None:
            return kept if len(kept) == n else kept[self.rng.integers(0, len(kept), n)]
        sd = self.cfg.motion.calibration_sd
        if not sd.any():
            return np.tile([1.0, 0.0], (n, 1))
        out = np.array([1.0, 0.0]) + self.rng.normal(size=(n, 2)) * sd
        out[:, 0] = np.clip(out[:, 0], *SCALE_LIMITS)
        return out

    def _draw(self, rows: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
        """n rows drawn by systematic resampling with weights w."""
        idx = np.searchsorted(np.cumsum(w), (self.rng.uniform() + np.arange(n)) / n)
        return rows[np.minimum(idx, len(rows) - 1)]

    def _weights(self) -> np.ndarray:
        w = np.exp(self.logw - self.logw.max())
        return w / w.sum()

    def posterior_image(self, centre: Pose2D, radius_m: float, m_per_px: float = 1.0) -> np.ndarray | None:
        """The posterior's position marginal on a north-up grid of +-radius_m around `centre` (row 0 north,
        as a method's likelihood image): particle weights per cell, lightly blurred. None while the belief is
        still a prior's uniform window."""
        if self._region is not None or len(self.particles) == 0:
            return None
        n = int(round(radius_m / m_per_px))
        j = np.round((self.particles[:, 0] - centre.x) / m_per_px).astype(int) + n
        i = n - np.round((self.particles[:, 1] - centre.y) / m_per_px).astype(int)
        inside = (i >= 0) & (i <= 2 * n) & (j >= 0) & (j <= 2 * n)
        size = 2 * n + 1
        flat = np.bincount(i[inside] * size + j[inside], self._weights()[inside], size * size)
        return gaussian_filter(flat.reshape(size, size), 0.7)

    def _resample_if_degenerate(self) -> None:
        """Systematic resampling when the effective sample size falls below half the particles."""
        w = self._weights()
        n = len(w)
        if 1.0 / np.sum(w**2) >= n / 2:
            return
        self.particles = self._draw(self.particles, w, n)
        self.logw = np.zeros(n)

    def _summarize(self) -> None:
        """Mode (mean shift from the mean of the densest 3 x 3 m block), covariance about it, confidence = mass near
        it."""
        p, w = self.particles[:, :3], self._weights()
        lo = p[:, :2].min(axis=0)
        cell = np.floor(p[:, :2] - lo).astype(int)
        shape = cell.max(axis=0) + 3
        hist = np.bincount((cell[:, 0] + 1) * shape[1] + cell[:, 1] + 1, w, shape[0] * shape[1]).reshape(
            shape
        )
        box = sum(np.roll(np.roll(hist, a, 0), b, 1) for a in (-1, 0, 1) for b in (-1, 0, 1))
        bx, by = np.unravel_index(int(np.argmax(box)), shape)
        near = (np.abs(cell[:, 0] + 1 - bx) <= 1) & (np.abs(cell[:, 1] + 1 - by) <= 1)  # the densest 3x3 m
        ws = w[near] / w[near].sum()
        mode = np.array([*(ws @ p[near, :2]), _circular_mean(p[near, 2], ws)])
        for _ in range(3):
            d = p - mode
            d[:, 2] = wrap_angle(d[:, 2])
            sel = (np.hypot(d[:, 0], d[:, 1]) <= NEAR_M) & (np.abs(d[:, 2]) <= NEAR_RAD)
            if not sel.any():
                break
            ws = w[sel] / w[sel].sum()
            mode = mode + ws @ d[sel]
        mode[2] = wrap_angle(mode[2])
        d = p - mode
        d[:, 2] = wrap_angle(d[:, 2])
        cov = (d * w[:, None]).T @ d
        near = (np.hypot(d[:, 0], d[:, 1]) <= NEAR_M) & (np.abs(d[:, 2]) <= NEAR_RAD)
        self.mode = Pose2D(float(mode[0]), float(mode[1]), float(mode[2]))
        cov = scale_axes(cov, self.covariance_scale, self.yaw_scale)
        # the posterior's own mass near the mode drives the states; what is published holds only as far as the
        # scans are read as on familiar imagery and back the belief (evidence_readability())
        self.posterior_mass = particle_confidence(w, near)
        r = self._trust()
        if r < 1.0:
            cov = r * cov + (1.0 - r) * self._prior_spread()
        self.estimate = Estimate(self.mode, cov, r * self.posterior_mass)

    def _prior_spread(self) -> np.ndarray:
        """Second moment of a pose spread evenly over the region the last prior allows (its window moved by the
        odometry; the prior's own window once released): where the vehicle may be when the scans mislead."""
        c = self.cfg
        half = self._anchor_m if self._anchor is not None else c.search_radius_m
        return SearchWindow(half, np.radians(c.search_yaw_deg)).covariance()

    def _transition(self) -> None:
        c = self.cfg
        disagreed = self._agrees.count(False)
        if len(self._agrees) == c.diverge_window and disagreed >= c.diverge_count:
            self.divergences += 1
            why = f"diverged: {disagreed} of the last {c.diverge_window} scans disagreed with the belief"
            centre, radius = self.mode, c.lost_radius_m
            if self._anchor is not None:  # the wide search covers where the vehicle can be, no farther
                centre, radius = self._anchor, min(radius, self._anchor_m)
            self.seed(
                centre, SearchWindow(radius, np.radians(c.lost_yaw_deg)), why, State.DIVERGED, external=False
            )
            return
        conf = self.posterior_mass  # the states follow the posterior; the readability only what is published
        # weakly read scans keep the belief bounded where single-scan peaks can move it (relocation); without
        # relocation a divergence's wide search is the only way back after a kidnapping, and bounding it by
        # readability took NCC's recovery on the synthetic test towns from 5 towns of 8 to 3
        readable = self.readability >= 1.0 or c.relocate_scans <= 0
        if conf >= c.converged_confidence:
            self.state, self.reason = State.CONVERGED, f"confidence {format_confidence(conf)}"
            # an established belief (converged on scans read as on familiar imagery) answers for itself
            self._held = self._held + 1 if readable else 0
            if self._held >= c.anchor_release_scans:
                self._anchor = None
        else:
            self._held = 0
            if self.state == State.CONVERGED:
                self.state, self.reason = State.SEARCHING, f"confidence fell to {format_confidence(conf)}"
            else:
                self.reason = f"confidence {format_confidence(conf)} below {c.converged_confidence:.2f}"
        if not readable and self._anchor is None and c.anchor_release_scans > 0:
            # scans read weakly from here on: the belief no longer answers for itself, so where it may go is
            # bounded again, by a prior's window around where it is, moved by the odometry from now on
            self._anchor, self._anchor_m = self.mode, c.search_radius_m
        if min(self.readability, self.backing) < 1.0:
            self.reason += f" ({self.weak_reading()})"

    def _trust(self) -> float:
        """The share of the posterior's confidence that is published: the lower of the readability (the last
        scans' median confidence, each at its own mode) and the backing (the median mass each put near the belief
        it was fused into), each as evidence_readability() makes it. Updates both."""
        rc = self.cfg.readable_confidence
        if rc > 0 and self._scan_confidences:
            self.readability = evidence_readability(float(np.median(self._scan_confidences)), rc)
            self.backing = evidence_readability(float(np.median(self._scan_backing)), rc)
        return min(self.readability, self.backing)

    def weak_reading(self) -> str:
        """Why the published confidence is below the posterior's own (readability or backing below 1)."""
        rc = self.cfg.readable_confidence
        if self.readability <= self.backing:
            return (
                f"scans read weakly: median scan confidence {np.median(self._scan_confidences):.3f} "
                f"< {rc:g}, readability {self.readability:.2f}"
            )
        return (
            f"scans back the belief weakly: median mass near it {np.median(self._scan_backing):.3f} < {rc:g}, "
            f"backing {self.backing:.2f}"
        )


def evidence_readability(median_confidence: float, readable_confidence: float) -> float:
    """How far the belief's own confidence holds: 1 while the last scans' median single-scan confidence (decode.py:
    the mass a scan's volume puts near its mode; with test-time views, their mixture's) reaches
    `readable_confidence`, in proportion below it. The published confidence is the posterior's mass near the mode
    times this, the covariance the same mixture with the prior region's spread; the filter's states and windows
    follow the posterior itself, so the estimates are those of a filter without it, and a converged belief is
    published only when its published confidence also reaches converged_confidence (fusion.py).

    The filter multiplies scans as independent readings of the place. On imagery the model reads poorly they are
    not: its volumes keep singling out the same look-alike, and a hundred of them made a belief 30-40 m off at
    confidence 0.9 (helsinki-dev's real orthophotos, BENCHMARKS.md `real-sequence`), which the node would have
    published to Nav2. No single scan shows it, but their confidence as a whole does: in the filter's +-6 m
    tracking window the median scan holds 0.33-0.49 on the synthetic val and test towns and 0.03-0.08 on the real
    orthophotos. The estimate itself is left alone: weighting each scan by its own confidence instead (a power
    likelihood) stopped the lock on two real drives but broke the third, where the confidence of a scan barely
    tells its right readings from its wrong ones.

    The same bar applies to the backing (BayesFilter._trust()): the median mass the last scans put near the belief
    they were fused into. Scans read strongly at another place do not back the belief, yet reweighting keeps the
    particles where they are and resampling concentrates them, so the posterior's own mass grows: on a real drive
    the unadapted model's belief sat 10 m off with mass 0.95 while the scans, read strongly again, singled out the
    truth (four frames published 10 m off before the relocation)."""
    if readable_confidence <= 0:
        return 1.0
    return float(np.clip(median_confidence / readable_confidence, 0.0, 1.0))


def scale_axes(cov: np.ndarray, position: float, yaw: float) -> np.ndarray:
    """An (x, y, yaw) covariance (or a stack of them) with the position variances times `position`, the yaw
    variance times `yaw` and the cross terms by the geometric mean, so the correlations stay."""
    d = np.sqrt([position, position, yaw])
    return cov * d[:, None] * d[None, :]


def particle_confidence(w: np.ndarray, near: np.ndarray) -> float:
    """The posterior mass near the mode as a finite weighted particle set estimates it: their share near the mode,
    discounted as if one more sample, not yet drawn, lay elsewhere (n_eff / (n_eff + 1), n_eff = 1 / sum w^2, the
    Kish effective sample size, n/2 to n here). A sample of n_eff particles cannot show a probability of 1, so
    the confidence stays strictly below 1 (confidence_publish 1 publishes nothing) and changes by at most
    1 / (n_eff + 1) (0.07 % at the default 3000 particles)."""
    n_eff = 1.0 / float(np.sum(w**2))
    return float(np.sum(w[near])) * n_eff / (n_eff + 1.0)


def format_confidence(confidence: float) -> str:
    """Two decimals rounded down, so a confidence below a threshold never reads as reaching it (0.9995: 0.99)."""
    return f"{np.floor(confidence * 100.0 + 1e-9) / 100.0:.2f}"


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    order = np.argsort(x)
    return float(x[order][np.searchsorted(np.cumsum(w[order]), q * w.sum())]) if len(x) else 0.0


def _read_volume(volume: ScoreVolume, logq: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """log q at continuous poses (cubic spline over the cells); -inf outside the volume."""
    nk, ni, nj = logq.shape
    pr, offsets = volume.prior, volume.yaw_offsets
    j = (poses[:, 0] - pr.x) / volume.m_per_px + volume.centre_px
    i = volume.centre_px - (poses[:, 1] - pr.y) / volume.m_per_px
    dyaw = wrap_angle(poses[:, 2] - pr.yaw)
    step = offsets[1] - offsets[0] if nk > 1 else np.radians(1.0)
    if nk > 1 and offsets[-1] - offsets[0] + 1.5 * step >= 2 * np.pi:  # full circle: close it
        logq = np.concatenate([logq, logq[:1]])
        offsets = np.append(offsets, offsets[0] + 2 * np.pi)
        dyaw = offsets[0] + np.mod(dyaw - offsets[0], 2 * np.pi)
    k = np.interp(dyaw, offsets, np.arange(len(offsets)), left=-1.0, right=len(offsets))
    half = 0.5
    inside = (
        (i >= -half)
        & (i <= ni - 1 + half)
        & (j >= -half)
        & (j <= nj - 1 + half)
        & (dyaw >= offsets[0] - half * step)
        & (dyaw <= offsets[-1] + half * step)
    )
    k = np.clip(k, 0, len(offsets) - 1)
    out = np.full(len(poses), -np.inf)
    if inside.any():
        coords = np.stack([k[inside], i[inside], j[inside]])
        out[inside] = np.minimum(map_coordinates(logq, coords, order=3, mode="nearest"), 0.0)
    return out
