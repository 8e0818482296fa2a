"""The sequence benchmark's per-town offsets (benchmarks/sequence.py: town_offsets) measure what they say: the
components of a known offset along the heading, across it and towards the town's sun, with the town's
georegistration offset removed, the yaw offset, and the hard frames the filter fixes."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.sequence import town_offsets
from translocnet_ros.evaluation.sequence import CONVERGED_FROM
from translocnet_ros.geo.pose import Pose2D

N = CONVERGED_FROM + 20


def results(gt: np.ndarray, dx: np.ndarray, dy: np.ndarray, dyaw_deg: float) -> list:
    return [
        SimpleNamespace(est=Pose2D(g[0] + a, g[1] + b, g[2] + np.radians(dyaw_deg)))
        for g, a, b in zip(gt, dx, dy)
    ]


def make_town(tmp_path: Path, registration: list[float], sun_azimuth_deg: float) -> Path:
    town = tmp_path / "test_town"
    town.mkdir()
    meta = {"registration_error_m": registration, "imagery": {"sun_azimuth_deg": sun_azimuth_deg}}
    (town / "town.json").write_text(json.dumps(meta))
    return town


def test_offsets_are_split_along_the_heading_the_sun_and_the_registration(tmp_path):
    # the sun in the north (90 deg CCW from east); the imagery misregistered by 0.1 m east
    town = make_town(tmp_path, [0.1, 0.0], 90.0)
    gt = np.zeros((N, 3))
    gt[:, 0] = np.arange(N)  # driving east
    ones = np.ones(N)
    # single frames 0.5 m ahead (east) and 0.3 m south (into the shadows), plus the registration; yaw +0.4 deg;
    # two converged frames 3 m off, which the filter has within 1 m
    kdx, kdy = 0.6 * ones, -0.3 * ones
    kdx[CONVERGED_FROM + 3 : CONVERGED_FROM + 5] = 3.1
    sdx, sdy = 0.3 * ones, -0.1 * ones  # filtered: 0.2 m ahead, 0.1 m south
    row = town_offsets(
        [town],
        [(gt, results(gt, kdx, kdy, 0.4))],
        [(gt, results(gt, sdx, sdy, -1.5))],
    )[0]
    k, s = row["known"], row["sequence"]
    assert k["near"] == 18  # the two wrong matches are not part of the offset
    assert k["along_heading_m"] == pytest.approx(0.5)
    assert k["across_heading_m"] == pytest.approx(-0.3)  # across = to the left of the heading (north)
    assert k["towards_sun_m"] == pytest.approx(-0.3)  # 0.3 m away from the sun
    assert k["yaw_deg"] == pytest.approx(0.4) and k["yaw_recall_1deg"] == 1.0
    assert s["along_heading_m"] == pytest.approx(0.2) and s["towards_sun_m"] == pytest.approx(-0.1)
    assert s["yaw_deg"] == pytest.approx(-1.5) and s["yaw_recall_1deg"] == 0.0
    assert (row["hard"], row["hard_filtered_within_1m"]) == (2, 2)


def test_frames_before_convergence_do_not_count(tmp_path):
    town = make_town(tmp_path, [0.0, 0.0], 0.0)
    gt = np.zeros((N, 3))
    gt[:, 1] = np.arange(N)
    gt[:, 2] = np.pi / 2  # driving north, the sun in the east
    dx = np.zeros(N)
    dx[:CONVERGED_FROM] = 30.0  # lost before the 10th frame: not scored
    dx[CONVERGED_FROM:] = 0.25  # then 0.25 m east: to the right of the heading, towards the sun
    row = town_offsets([town], [(gt, results(gt, dx, 0 * dx, 0))], [(gt, results(gt, dx, 0 * dx, 0))])[0]
    assert row["known"]["towards_sun_m"] == pytest.approx(0.25)
    assert row["known"]["across_heading_m"] == pytest.approx(-0.25)
    assert row["known"]["along_heading_m"] == pytest.approx(0.0, abs=1e-9)
    assert row["hard"] == 0


def test_a_town_without_a_near_frame_has_no_offset(tmp_path):
    town = make_town(tmp_path, [0.0, 0.0], 0.0)
    gt = np.zeros((N, 3))
    far = np.full(N, 25.0)  # every frame a wrong match
    row = town_offsets([town], [(gt, results(gt, far, far, 0))], [(gt, results(gt, far, far, 0))])[0]
    assert row["known"]["near"] == 0 and row["known"]["along_heading_m"] is None
    assert row["hard"] == N - CONVERGED_FROM and row["hard_filtered_within_1m"] == 0
