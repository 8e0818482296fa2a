"""The `sequence` protocol (DESIGN.md §6): odometry model, sequential check, outputs, robustness options."""

import csv
import json

import numpy as np
import pytest

from translocnet_ros.cli import main
from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.evaluation.metrics import frame_errors
from translocnet_ros.evaluation.protocol import CSV_HEADER, draw_priors
from translocnet_ros.evaluation.robustness import Corruption
from translocnet_ros.evaluation.sequence import SequenceError, check_sequential, noisy_odometry, run_sequence
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.localization.filter import FilterConfig
from translocnet_ros.localization.methods import make_method


def test_odometry_noise_is_seeded_and_as_specified():
    gt = [Pose2D(0.0, 0.0, 0.0)]
    for _ in range(4000):
        gt.append(gt[-1].compose(Pose2D(1.0, 0.0, np.radians(0.3))))
    a, b = noisy_odometry(gt, 3), noisy_odometry(gt, 3)
    assert a == b and a != noisy_odometry(gt, 4) and a[0] == Pose2D(0.0, 0.0, 0.0)
    inc = np.array([[p.x, p.y, p.yaw] for p in a[1:]])
    assert inc[:, 0].mean() == pytest.approx(1.02, abs=0.002)  # scale error
    assert inc[:, 0].std() == pytest.approx(0.03, rel=0.1) and inc[:, 1].std() == pytest.approx(0.03, rel=0.1)
    assert np.degrees(inc[:, 2]).mean() == pytest.approx(0.3 + 0.1, abs=0.02)  # 0.1 deg per metre drift
    assert np.degrees(inc[:, 2]).std() == pytest.approx(0.2, rel=0.1)


def test_check_sequential_names_the_gap():
    t = np.arange(5) * 0.1
    xy = np.column_stack([np.arange(5.0), np.zeros(5)])
    check_sequential(t, xy, list(range(5)))
    with pytest.raises(SequenceError, match=r"frames 2 -> 3 .* 0\.500 s"):
        check_sequential(np.array([0, 0.1, 0.2, 0.7, 0.8]), xy, list(range(5)))
    far = xy.copy()
    far[4, 0] = 30.0
    with pytest.raises(SequenceError, match=r"frames 3 -> 4 .* 27\.0 m"):
        check_sequential(t, far, list(range(5)))


def test_bad_scans_and_kidnapping(small_town):
    drive = KittiDrive(small_town / "drive_00")
    poses = drive.ground_truth(MapFrame.from_any(GeoTiffSource(small_town / "ortho.tif").crs)).poses
    c = Corruption(bad_fraction=0.2, seed=1)
    kinds = [c.bad_kind(n) for n in range(2000)]
    assert kinds == [c.bad_kind(n) for n in range(2000)]
    assert sum(k is not None for k in kinds) / 2000 == pytest.approx(0.2, abs=0.03)
    assert {k for k in kinds if k} == {"elsewhere", "empty", "half-occluded"}
    for kind in ("elsewhere", "empty", "half-occluded"):
        n = kinds.index(kind)
        if n >= len(drive.frames):
            continue
        scan, clean = c.scan(n, drive, poses, drive.frames), drive.scan_base(drive.frames[n])
        if kind == "empty":
            assert len(scan) == 0
        elif kind == "half-occluded":
            assert 0.25 * len(clean) < len(scan) < 0.75 * len(clean)
        else:
            assert len(scan) != len(clean) or not np.array_equal(scan, clean)
    # a subsequence (--every 2): position n is frame 2n, and a clean scan is that frame's own scan
    every2 = drive.frames[::2]
    clean_at = [n for n in range(len(every2)) if c.bad_kind(every2[n]) is None and every2[n] != n]
    assert clean_at
    n = clean_at[0]
    assert np.array_equal(c.scan(n, drive, poses[::2], every2), drive.scan_base(every2[n]))
    odo = noisy_odometry(poses, 0)
    k = Corruption(kidnap_index=5, kidnap_m=50.0).odometry(odo)
    jump = odo[5].inverse().compose(k[5])
    assert np.hypot(jump.x, jump.y) == pytest.approx(50.0) and k[:5] == odo[:5] and k[6:] == odo[6:]


def _eval(town, out, *extra):
    paths = ["--drive", str(town / "drive_00"), "--ortho", str(town / "ortho.tif"), "--out", str(out)]
    return main(["eval", *paths, "--quiet", "--no-plot", *extra])


def test_eval_sequence_with_ncc(small_town, tmp_path):
    out = tmp_path / "s.json"
    assert _eval(small_town, out, "--protocol", "sequence", "--method", "ncc", "--seed", "2") == 0
    s = json.loads(out.read_text())
    assert s["protocol"] == "sequence" and s["n"] == 12 and s["converged"]["n"] == 3
    assert s["first_fix_frame"] is None or 0 <= s["first_fix_frame"] < 12
    assert s["filter_latency_ms"]["p50"] > 0 and s["divergences"] == 0
    with open(out.with_suffix(".frames.csv")) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == CSV_HEADER and [int(r["frame"]) for r in rows] == list(range(12))
    # prior columns: dead reckoning = the first prior moved by the noisy odometry alone
    src = GeoTiffSource(small_town / "ortho.tif")
    gt = KittiDrive(small_town / "drive_00").ground_truth(MapFrame.from_any(src.crs)).poses
    dead = draw_priors(gt, "known", 2)[0]
    for n, inc in enumerate(noisy_odometry(gt, 2)):
        dead = dead.compose(inc)
        assert float(rows[n]["prior_x"]) == pytest.approx(dead.x, abs=1e-3)
        assert float(rows[n]["prior_y"]) == pytest.approx(dead.y, abs=1e-3)
    # `converged` scores frames from the 10th on, re-scored here from the CSV alone
    true = np.array([[p.x, p.y, p.yaw] for p in gt])
    est = np.array([[float(r[k]) for k in ("est_x", "est_y", "est_yaw")] for r in rows])
    reckoned = np.array([[float(r[k]) for k in ("prior_x", "prior_y", "prior_yaw")] for r in rows])
    err = frame_errors(true, est)["position"]
    assert s["converged"]["position_error_m"]["mean"] == pytest.approx(err[9:].mean(), abs=1e-3)
    # the filter localizes from a +-20 m prior: far better than dead reckoning from it
    assert err[9:].mean() < min(2.5, 0.2 * frame_errors(true, reckoned)["position"][9:].mean())


def test_eval_sequence_refuses_what_is_not_a_drive(small_town, tmp_path, capsys):
    # every 3rd frame of a 10 Hz drive: 0.3 s apart, not a sequence
    assert _eval(small_town, tmp_path / "a.json", "--protocol", "sequence", "--every", "3") == 2
    err = capsys.readouterr().err
    assert "sequence protocol needs a drive" in err and "0.300 s" in err
    assert not (tmp_path / "a.json").exists()
    assert _eval(small_town, tmp_path / "b.json", "--protocol", "sequence", "--method", "prior") == 2
    assert "no likelihood volume" in capsys.readouterr().err
    n = len(KittiDrive(small_town / "drive_00").frames)
    assert _eval(small_town, tmp_path / "c.json", "--protocol", "sequence", "--kidnap-frame", str(n)) == 2
    assert f"kidnapping at position {n}: the sequence has positions 1..{n - 1}" in capsys.readouterr().err


def test_eval_sequence_robustness_options_reach_the_run(small_town, tmp_path):
    out = tmp_path / "k.json"
    extra = ["--protocol", "sequence", "--method", "ncc", "--kidnap-frame", "6", "--kidnap-m", "30"]
    assert _eval(small_town, out, *extra, "--bad-scans", "0.3", "--max-frames", "8") == 0
    s = json.loads(out.read_text())
    assert s["kidnap"]["frame"] == 6 and "recovered_after_frames" in s["kidnap"]
    with open(out.with_suffix(".frames.csv")) as f:
        rows = list(csv.DictReader(f))
    dead = np.array([[float(r["prior_x"]), float(r["prior_y"])] for r in rows])
    steps = np.hypot(*np.diff(dead, axis=0).T)
    assert steps[5] == pytest.approx(30.0, abs=2.0) and np.delete(steps, 5).max() < 2.0  # the missed jump
    assert len(rows) == 8 and s["n"] == 8 and s["converged"] is None  # fewer than 10 frames


def test_published_frames_are_the_engines_decision_and_follow_the_readability(small_town):
    """run_sequence records what the node would publish: only converged beliefs; a filter that never trusts its
    scans' readability (readable_confidence 10: a confidence is at most 1, so the readability at most 0.1)
    publishes nothing, with the same states and estimates."""
    src = GeoTiffSource(small_town / "ortho.tif")
    runs = {}
    for readable in (0.2, 10.0):
        cfg = FilterConfig(readable_confidence=readable)
        _, runs[readable] = run_sequence(
            make_method("ncc"), KittiDrive(small_town / "drive_00"), src, src.crs, 0, 1, 15, False, cfg
        )
    trusted, doubted = runs[0.2], runs[10.0]
    assert any(r.published for r in trusted)
    assert all(r.state == "CONVERGED" for r in trusted if r.published)
    assert not any(r.published for r in doubted) and max(r.confidence for r in doubted) <= 0.1
    # the readability changes what is published, not the filter: same states, same estimates
    assert [(r.est, r.state) for r in trusted] == [(r.est, r.state) for r in doubted]
