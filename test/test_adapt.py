"""`translocnet adapt`: a new model file adapted on an area's orthophoto and unlabeled scans, no pose read."""

import json
import shutil

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from conftest import HELSINKI

from translocnet_ros.cli import main
from translocnet_ros.dataset.bag import BagDrive
from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.dataset.unlabeled import unlabeled_scans
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.imagery.patch import GeoPatch, equalize
from translocnet_ros.localization.translocnet import DEFAULT_MODEL, TransLocNetLocalizer, load_model
from translocnet_ros.localization.types import SearchWindow
from translocnet_ros.model.input_range import InputRange, fit_normalization, measure


def test_unlabeled_scans_need_no_oxts(small_town, tmp_path):
    drive_dir = sorted(small_town.glob("drive_*"))[0]
    labelled = KittiDrive(drive_dir)
    bare = tmp_path / "scans"
    shutil.copytree(drive_dir / "velodyne_points" / "data", bare)
    shutil.copy(labelled.calib_path, bare / "calib_imu_to_velo.txt")
    scans = unlabeled_scans(bare)
    assert len(scans) == len(labelled.frames)
    np.testing.assert_allclose(scans[0], labelled.scan_base(labelled.frames[0]), atol=1e-5)


def test_unlabeled_bag_scans_match_the_drive_reader():
    bag = HELSINKI / "111140337709579" / "kitti.bag"
    drive = BagDrive(bag)
    scans = unlabeled_scans(bag, base_frame=drive._base)
    assert len(scans) == len(drive.frames) == 10
    np.testing.assert_allclose(scans[3], drive.scan_base(3), atol=1e-5)


def test_adapt_writes_a_model_that_records_its_area(small_town, tmp_path):
    drive_dir = sorted(small_town.glob("drive_*"))[0]
    base, _, base_meta = load_model(DEFAULT_MODEL, torch.device("cpu"))
    old_sd = base.state_dict()
    stats = [k for k in old_sd if k.endswith("running_mean")]
    conv = "aerial_encoder.stem.0.0.weight"
    for extra, bn_changed in (([], False), (["--batchnorm", "--scans", str(drive_dir)], True)):
        out = tmp_path / f"adapted{len(extra)}.pt"
        argv = ["adapt", "--ortho", str(small_town / "ortho.tif"), "--patches", "6", "--out", str(out)]
        assert main([*argv, "--full-statistics", *extra]) == 0
        meta = json.loads(out.with_suffix(".json").read_text())
        assert meta["adapted"]["ortho"] == "ortho.tif"
        assert meta["adapted"]["from_model"]["sha256"] == base_meta["sha256"]
        new_sd = load_model(out, torch.device("cpu"))[0].state_dict()
        assert torch.equal(old_sd[conv], new_sd[conv])  # weights untouched
        assert not torch.equal(old_sd["rgb_mean"], new_sd["rgb_mean"])  # the area's input statistics
        assert all(torch.equal(old_sd[k], new_sd[k]) != bn_changed for k in stats)
        if bn_changed:
            assert meta["adapted"]["scans"].startswith(f"{drive_dir.name} (12 scans")
    # the node's and eval's localizer take it like any model
    assert TransLocNetLocalizer(out).meta["adapted"]["patches"] == 6
    # an adapted model is not adapted again on top (its normalization is no longer the trained one)
    with pytest.raises(SystemExit, match="already adapted"):
        main(
            [
                "adapt",
                "--model",
                str(out),
                "--ortho",
                str(small_town / "ortho.tif"),
                "--out",
                str(tmp_path / "x.pt"),
            ]
        )


TRAINED = InputRange((0.3, 0.3, 0.3), (0.7, 0.7, 0.7), (0.1, 0.1, 0.1), (0.25, 0.25, 0.25), 100)


def patches_with(mean: float, std: float, n: int = 4, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(rng.normal(mean, std, (64, 64, 3)) * 255, 0, 255).astype(np.uint8) for _ in range(n)]


def test_normalization_is_kept_inside_the_trained_range_and_mapped_onto_it_outside():
    mu, sd = np.array([0.45, 0.45, 0.42]), np.array([0.22, 0.21, 0.21])
    inside = fit_normalization(mu, sd, patches_with(0.5, 0.15), TRAINED)
    assert inside.outside == []
    np.testing.assert_array_equal(inside.rgb_mean, mu)
    np.testing.assert_array_equal(inside.rgb_std, sd)
    dark = fit_normalization(mu, sd, patches_with(0.12, 0.04), TRAINED)
    assert set(dark.outside) == {f"{c} {s}" for c in "RGB" for s in ("mean", "spread")}
    np.testing.assert_allclose(dark.target_mean, 0.3)  # the nearest trained statistics: the range's edge
    np.testing.assert_allclose(dark.target_std, 0.1)
    # the area's pixels through the new normalization = pixels of the target statistics through the model's
    np.testing.assert_allclose((dark.area_mean - dark.rgb_mean) / dark.rgb_std, (0.3 - mu) / sd, atol=1e-9)
    np.testing.assert_allclose(dark.area_std / dark.rgb_std, 0.1 / sd, atol=1e-9)
    flat = fit_normalization(mu, sd, patches_with(0.5, 0.04), TRAINED)  # mean inside, spread outside
    assert flat.outside == ["R spread", "G spread", "B spread"]
    np.testing.assert_allclose((flat.area_mean - flat.rgb_mean) / flat.rgb_std, (flat.area_mean - mu) / sd)


def test_trained_range_covers_the_training_patches_it_was_measured_on():
    class Frames:  # training samples whose aerial patches have known statistics
        def __init__(self):
            self.items = [
                patches_with(m, s, 1, i)[0]
                for i, (m, s) in enumerate(zip(np.linspace(0.3, 0.7, 50), np.linspace(0.05, 0.15, 50)))
            ]

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return {"aerial": torch.from_numpy(self.items[i].transpose(2, 0, 1).copy())}

    r = measure(Frames(), n=50)
    assert r.patches == 50
    assert all(0.29 < lo < 0.33 for lo in r.mean_lo) and all(0.67 < hi < 0.71 for hi in r.mean_hi)
    assert all(0.045 < lo < 0.06 for lo in r.std_lo) and all(0.14 < hi < 0.155 for hi in r.std_hi)
    assert InputRange.from_dict(r.to_dict()).mean_lo == pytest.approx(r.mean_lo, abs=1e-4)


def test_adapt_keeps_an_area_inside_the_trained_range_and_corrects_a_dark_one(small_town, tmp_path):
    """adapt's input statistics: the generator's own orthophoto is inside the range the default model was
    trained on (nothing changes); the same orthophoto as a dark, flat product is mapped back towards what the
    model knows, so its likelihood comes closer to the one on the original imagery."""
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert meta["aerial_input_range"]["patches"] >= 100  # measured by `translocnet calibrate`
    dark_dir = tmp_path / "dark"
    dark_dir.mkdir()
    with rasterio.open(small_town / "ortho.tif") as src:
        profile, data = src.profile, src.read()
    with rasterio.open(dark_dir / "ortho.tif", "w", **profile) as dst:
        dst.write((0.3 * data + 5).astype(np.uint8))
    base = load_model(DEFAULT_MODEL, torch.device("cpu"))[0].state_dict()
    outs = {}
    for name, ortho in (("plain", small_town / "ortho.tif"), ("dark", dark_dir / "ortho.tif")):
        outs[name] = tmp_path / f"{name}.pt"
        argv = ["adapt", "--ortho", str(ortho), "--patches", "8", "--no-equalize", "--out", str(outs[name])]
        assert main(argv) == 0
    plain_meta = json.loads(outs["plain"].with_suffix(".json").read_text())["adapted"]
    assert plain_meta["input_statistics"]["outside_trained_range"] == []
    plain_sd = load_model(outs["plain"], torch.device("cpu"))[0].state_dict()
    assert torch.equal(plain_sd["rgb_mean"], base["rgb_mean"]) and torch.equal(
        plain_sd["rgb_std"], base["rgb_std"]
    )
    dark_meta = json.loads(outs["dark"].with_suffix(".json").read_text())["adapted"]
    assert "R mean" in dark_meta["input_statistics"]["outside_trained_range"]

    drive = KittiDrive(sorted(small_town.glob("drive_*"))[0])
    plain_src, dark_src = GeoTiffSource(small_town / "ortho.tif"), GeoTiffSource(dark_dir / "ortho.tif")
    gt = drive.ground_truth(MapFrame.from_any(plain_src.crs)).poses
    window = SearchWindow(4.0, 0.05)
    models = {
        m: TransLocNetLocalizer(path, views=1, ncc_weight=0.0)
        for m, path in (("base", DEFAULT_MODEL), ("dark", outs["dark"]))
    }

    def log_probs(model, src, k):
        m = models[model]
        logits = m.score_volume(drive.scan_base(drive.frames[k]), src, gt[k], window).logits
        return torch.log_softmax(torch.from_numpy(logits).flatten().double() / m.temperature, 0).numpy()

    for k in (0, 6):  # KL divergence from the likelihood on the original imagery
        reference = log_probs("base", plain_src, k)
        kl = lambda lp, ref=reference: float((np.exp(ref) * (ref - lp)).sum())  # noqa: E731
        unadapted, adapted = kl(log_probs("base", dark_src, k)), kl(log_probs("dark", dark_src, k))
        assert adapted < 0.6 * unadapted, (k, adapted, unadapted)


def test_equalize_flattens_each_channel_over_valid_pixels_only():
    rng = np.random.default_rng(0)
    img = np.stack(
        [rng.integers(100, 140, (60, 60)), rng.integers(20, 40, (60, 60)), rng.integers(200, 210, (60, 60))],
        -1,
    )
    img = img.astype(np.uint8)
    valid = np.ones((60, 60), bool)
    valid[:, :15] = False
    img[~valid] = 0
    out = equalize(GeoPatch(img, valid, Affine.identity(), None)).image
    assert (out[~valid] == 0).all()  # no-data stays no-data and does not skew the histogram
    for c in range(3):
        v = out[..., c][valid]
        assert v.min() == 0 and v.max() == 255  # each channel stretched to the full range
        assert abs(np.median(v.astype(float)) - 128) < 20  # and roughly uniform
        order = np.argsort(img[..., c][valid], kind="stable")
        assert (np.diff(v[order].astype(int)) >= 0).all()  # monotonic: the scene's structure is kept


def test_adapt_equalizes_by_default_and_records_it(small_town, tmp_path):
    out, plain_out = tmp_path / "eq.pt", tmp_path / "plain.pt"
    argv = ["adapt", "--ortho", str(small_town / "ortho.tif"), "--patches", "6", "--out"]
    assert main([*argv, str(out)]) == 0
    assert main([*argv, str(plain_out), "--no-equalize"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["adapted"]["equalize"] is True and meta["adapted"]["method"].startswith(
        "histogram equalization"
    )
    assert json.loads(plain_out.with_suffix(".json").read_text())["adapted"]["equalize"] is False
    assert not TransLocNetLocalizer(plain_out).equalize
    # statistics measured on equalized patches: about uniform on 0..1, inside the trained range
    mean = np.array(meta["adapted"]["input_statistics"]["area_patch_mean"])
    assert np.all(np.abs(mean - 0.5) < 0.05)

    drive = KittiDrive(sorted(small_town.glob("drive_*"))[0])
    src = GeoTiffSource(small_town / "ortho.tif")
    prior = drive.ground_truth(MapFrame.from_any(src.crs)).poses[0]
    scan = drive.scan_base(drive.frames[0])
    loc = TransLocNetLocalizer(out)
    assert loc.equalize
    equalized = loc.score_volume(scan, src, prior, SearchWindow(4.0, 0.05)).logits
    loc.equalize = False
    plain = loc.score_volume(scan, src, prior, SearchWindow(4.0, 0.05)).logits
    assert (
        np.isfinite(equalized).all() and np.abs(equalized - plain).max() > 1e-3
    )  # the network saw other input
    assert not TransLocNetLocalizer(DEFAULT_MODEL).equalize  # the default model leaves the imagery as it is


def test_calibrate_measures_the_range_with_the_models_own_training_augmentation(small_town):
    """`translocnet calibrate` measures the range on val-town patches through the augmentation recorded in the
    model's metadata: wider than the town's own patches, and containing them."""
    from translocnet_ros.evaluation.calibrate_cli import trained_input_range

    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    augmented = trained_input_range(meta, [small_town], 60, seed=0)
    meta["trained"]["sample"]["augment"] = False
    plain = trained_input_range(meta, [small_town], 60, seed=0)
    assert augmented.patches == plain.patches == 12  # every frame of the 12-frame drive
    for c in range(3):
        assert augmented.mean_lo[c] < plain.mean_lo[c] and augmented.mean_hi[c] > plain.mean_hi[c]
        assert augmented.std_lo[c] < plain.std_lo[c] and augmented.std_hi[c] > plain.std_hi[c]
