"""TransLocNet pieces: rasterization, rotation and correlation conventions, losses, TorchScript parity, export."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.localization.decode import decode_volume
from translocnet_ros.localization.translocnet import ModelLoadError, TransLocNetLocalizer, load_model
from translocnet_ros.localization.types import LocalizationError, ScoreVolume, SearchWindow
from translocnet_ros.model.config import ModelConfig
from translocnet_ros.model.data import SampleConfig, TownFrames, town_drives
from translocnet_ros.model.export import export
from translocnet_ros.model.losses import info_nce, subcell_loss, volume_nll
from translocnet_ros.model.network import TransLocNet, correlate, rotate
from translocnet_ros.model.rasterize import rasterize_bev

CFG = ModelConfig(width=8, match_dim=8, attn_dim=16, attn_heads=2)


def test_rasterize_channels_and_pixel_convention():
    ground = np.stack(np.meshgrid(np.linspace(-15, 15, 61), np.linspace(-15, 15, 61)), -1).reshape(-1, 2)
    pts = [np.column_stack([ground, np.full(len(ground), -1.7), np.full(len(ground), 0.3)])]
    wall = np.column_stack(
        [np.full(50, 10.2), np.full(50, 0.2), np.linspace(-1.7, 2.0, 50), np.full(50, 0.5)]
    )
    pts = torch.tensor(np.concatenate([*pts, wall, [[np.nan, 0, 0, 0]]]), dtype=torch.float32)
    bev, observed = rasterize_bev(pts, 64, 0.5)
    assert bev.shape == (8, 64, 64) and observed.shape == (1, 64, 64)
    # the wall at x = 10.2 m forward, y = 0.2 m left: column 32 + 20 = 52, row 32 - 1 = 31
    assert bev[4, 31, 52] == 1 and bev[2:6, :, :52].sum() == 0  # 1-2 m band only there
    assert bev[7, 31, 52] == pytest.approx(3.7 / 8.0, abs=0.01)  # top of the wall above ground, normalized
    assert bev[6, :, :50][bev[1, :, :50] > 0].mean() == pytest.approx(0.3, abs=1e-5)  # ground reflectance
    assert observed.sum() > 3000 and torch.isfinite(bev).all()


def test_rotate_is_counter_clockwise_in_the_map():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3:5, 6] = 1.0  # a blob straight ahead (east at yaw 0)
    north = rotate(x, torch.tensor([np.pi / 2]))[0, 0]
    r, c = np.unravel_index(int(north.argmax()), (8, 8))
    assert r <= 2 and 3 <= c <= 4  # now north of the centre: top rows


def test_correlate_matches_direct_sum():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 12, 12, generator=g)
    t = torch.randn(2, 3, 5, 5, generator=g)
    out = correlate(a, t)
    assert out.shape == (2, 8, 8)
    direct = torch.stack(
        [
            torch.stack(
                [torch.stack([(a[:, i : i + 5, j : j + 5] * t[k]).sum() for j in range(8)]) for i in range(8)]
            )
            for k in range(2)
        ]
    )
    torch.testing.assert_close(out, direct, atol=1e-4, rtol=1e-4)


def test_planted_template_is_found_with_decode():
    """The aerial map holds the rotated template at a known offset: the volume peaks at that pose."""
    g = torch.Generator().manual_seed(1)
    tmpl = torch.randn(1, 4, 16, 16, generator=g)
    yaw = torch.tensor([0.3])
    aerial = torch.randn(4, 40, 40, generator=g) * 0.1
    aerial[:, 9:25, 17:33] += rotate(tmpl, yaw)[0]  # top-left (9, 17); centre cell (40 - 16) / 2 = 12
    yaws = torch.tensor([0.1, 0.2, 0.3, 0.4])
    vol = correlate(aerial, rotate(tmpl, yaws)).numpy()
    est = decode_volume(ScoreVolume(vol * 5, Pose2D(0, 0, 0), yaws.numpy(), 1.0, 12.0))
    assert est.pose.x == pytest.approx(5.0, abs=0.5) and est.pose.y == pytest.approx(3.0, abs=0.5)
    assert est.pose.yaw == pytest.approx(0.3, abs=0.05)


def test_losses_are_finite_and_ordered():
    logits = torch.zeros(3, 5, 5)
    logits[1, 2, 2] = 5.0
    assert volume_nll(logits, 1, 2, 2) < volume_nll(logits, 0, 0, 0)
    assert volume_nll(torch.zeros(3, 5, 5), 0, 0, 0) == pytest.approx(np.log(75), rel=1e-6)
    g = torch.Generator().manual_seed(0)
    mb = torch.nn.functional.normalize(torch.randn(1, 8, 16, 16, generator=g), dim=1)
    ma = torch.nn.functional.normalize(torch.randn(8, 30, 30, generator=g), dim=1)
    ma_match = ma.clone()
    ma_match[:, 7:23, 7:23] = mb[0]  # aerial equals the BEV features where they overlap
    obs = torch.ones(1, 1, 16, 16)
    aligned = info_nce(mb, ma_match, obs, torch.tensor(0.0), 7, 7, generator=torch.Generator().manual_seed(0))
    random = info_nce(mb, ma, obs, torch.tensor(0.0), 7, 7, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(aligned) and aligned < random


def test_subcell_loss_sees_a_pull_inside_the_true_cell():
    """A volume peaked 0.3 cells below and 0.2 cells left of the true cell's centre: the NLL's argmax is right
    either way; the sub-cell loss is ~0 only when the truth is where the peak is, and its gradient moves the
    peak towards the truth."""
    rows, cols = torch.meshgrid(torch.arange(7.0), torch.arange(7.0), indexing="ij")
    peak = (3.3, 2.8)
    logits = (-((rows - peak[0]) ** 2) - (cols - peak[1]) ** 2).expand(3, 7, 7).clone()
    at_peak = subcell_loss(logits, 1, 3, 3, torch.tensor([0.3, -0.2]))
    at_centre = subcell_loss(logits, 1, 3, 3, torch.tensor([0.0, 0.0]))
    assert float(at_peak) < 1e-6 < 0.01 < float(at_centre)
    x = logits.clone().requires_grad_(True)
    subcell_loss(x, 1, 3, 3, torch.tensor([0.0, 0.0])).backward()
    moved = subcell_loss(x.detach() - 0.5 * x.grad, 1, 3, 3, torch.tensor([0.0, 0.0]))
    assert float(moved) < float(at_centre)
    # on the border or on a flat volume: no signal, no gradient
    assert float(subcell_loss(logits, 1, 0, 3, torch.tensor([0.3, 0.0]))) == 0.0
    flat = torch.zeros(3, 7, 7, requires_grad=True)
    subcell_loss(flat, 1, 3, 3, torch.tensor([0.3, 0.3])).backward()
    assert float(flat.grad.abs().sum()) == 0.0


def test_subcell_targets_follow_the_imagery_shift_and_the_world_turns(small_town):
    """frac is the imagery's shift in cells (rows down, cols right), within half a cell when the shift is half a
    cell wide, zero without augmentation, and turned with the sample like the integer target."""
    mcfg = ModelConfig()
    res = mcfg.out_m_per_px
    plain = TownFrames(town_drives(small_town), mcfg, SampleConfig(window_m=6.0, augment=False), seed=3)
    assert all(float(plain[i]["frac"].abs().max()) == 0.0 for i in range(3))
    wide = SampleConfig(window_m=6.0, misregistration_m=0.5 * res)
    frames = TownFrames(town_drives(small_town), mcfg, wide, seed=3)
    fr = np.array([frames[i]["frac"].numpy() for i in range(len(frames))])
    assert np.abs(fr).max() <= 0.5 + 1e-6 and np.abs(fr).max() > 0.2
    turned = TownFrames(town_drives(small_town), mcfg, replace(wide, dihedral_prob=1.0), seed=3)
    centre = int(round(6.0 / res))

    def truth(sample):  # the truth's position in the volume, in cells from its centre, sub-cell part included
        return sample["target"][1:].numpy() - centre + sample["frac"].numpy()

    # same draws up to the turn: a turn keeps the truth's distance from the prior
    for i in range(len(frames)):
        assert np.linalg.norm(truth(turned[i])) == pytest.approx(np.linalg.norm(truth(frames[i])), abs=1e-5)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    net = TransLocNet(CFG)
    ck = tmp_path_factory.mktemp("ck") / "best.pt"
    meta = {
        "model": CFG.to_dict(),
        "attention": True,
        "infonce_weight": 0.3,
        "train_towns": ["t"],
        "val_towns": ["v"],
        "sample": {},
    }
    torch.save({"model": net.state_dict(), "step": 1, "best": 9.9, "meta": meta}, ck)
    out = ck.parent / "models" / "translocnet.pt"
    export(ck, out)
    return net.eval(), out


def test_scripted_matches_eager(exported):
    net, path = exported
    module, cfg, meta = load_model(path, torch.device("cpu"))
    assert cfg == CFG and meta["attention"] is True
    g = torch.Generator().manual_seed(2)
    pts = torch.cat(
        [
            torch.rand(4000, 4, generator=g) * torch.tensor([60.0, 60.0, 4.0, 1.0])
            - torch.tensor([30.0, 30.0, 1.7, 0.0])
        ]
    )
    aerial = torch.randint(
        0, 255, (3, CFG.aerial_px(5.0), CFG.aerial_px(5.0)), dtype=torch.uint8, generator=g
    )
    yaws = torch.tensor([-0.1, 0.0, 0.2])
    with torch.no_grad():
        eager = net(pts, aerial, yaws)
        scripted = module(pts, aerial, yaws)
    assert eager.shape == (3, 11, 11)
    torch.testing.assert_close(scripted, eager, atol=1e-4, rtol=1e-4)


def test_load_checks_metadata_and_hash(exported, tmp_path):
    _, path = exported
    bad = tmp_path / "translocnet.pt"
    bad.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    meta = json.loads(path.with_suffix(".json").read_text())
    bad.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="sha256"):
        load_model(bad, torch.device("cpu"))
    meta["format"] = "something-else"
    bad.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="format"):
        load_model(bad, torch.device("cpu"))
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "missing.pt", torch.device("cpu"))


def test_localizer_runs_and_refuses_bad_input(exported, small_town):
    _, path = exported
    loc = TransLocNetLocalizer(path, device="cpu")
    drive = KittiDrive(small_town / "drive_00")
    src = GeoTiffSource(small_town / "ortho.tif")
    gt = drive.ground_truth(MapFrame.from_any(src.crs)).poses[0]
    prior = gt.offset(3.0, -2.0, 0.05)
    est = loc.localize(drive.scan_base(0), src, prior, SearchWindow(20.0, np.radians(10)))
    assert est.covariance.shape == (3, 3) and np.all(np.linalg.eigvalsh(est.covariance) > 0)
    # an untrained model: the estimate lies anywhere in the window (+ half a cell of refinement)
    assert max(abs(est.pose.x - prior.x), abs(est.pose.y - prior.y)) <= 20.5 and 0 <= est.confidence <= 1
    with pytest.raises(LocalizationError, match="points"):
        loc.localize(drive.scan_base(0)[:10], src, gt, SearchWindow())
    with pytest.raises(LocalizationError, match="outside the imagery"):
        loc.localize(drive.scan_base(0), src, gt.offset(5000.0, 0.0, 0.0), SearchWindow())
    assert len(loc.yaw_offsets(SearchWindow(20.0, np.pi))) == 144


def test_training_target_is_the_cell_of_the_true_pose(small_town):
    """The NLL target must be the volume cell where decoding places the ground truth (a 0.5 m vs 1 m mix-up
    here once trained a model on labels twice as far from the prior as the truth)."""
    mcfg, scfg = ModelConfig(), SampleConfig(window_m=6.0)
    frames = TownFrames(town_drives(small_town), mcfg, scfg, seed=3)
    gt = KittiDrive(small_town / "drive_00").ground_truth(
        MapFrame.from_any(GeoTiffSource(small_town / "ortho.tif").crs)
    )
    n = int(round(scfg.window_m / mcfg.out_m_per_px))
    offsets = np.radians((np.arange(scfg.yaw_bins) - scfg.yaw_bins // 2) * scfg.yaw_step_deg)
    moved = 0
    for index in range(len(frames)):
        s = frames[index]
        prior = Pose2D(*s["prior"].tolist())
        volume = ScoreVolume(np.zeros((scfg.yaw_bins, 2 * n + 1, 2 * n + 1)), prior, offsets, 1.0, float(n))
        assert volume.cell_of(gt.poses[index]) == tuple(s["target"].tolist())
        moved += np.hypot(prior.x - gt.poses[index].x, prior.y - gt.poses[index].y) > 1.0
    assert moved >= len(frames) // 2  # the priors really are offset


def test_scan_augmentations_crop_range_and_blind_a_sector():
    from dataclasses import replace

    from translocnet_ros.model.data import augment_scan

    rng = np.random.default_rng(0)
    r, a = rng.uniform(2, 120, 50_000), rng.uniform(-np.pi, np.pi, 50_000)
    pts = np.column_stack([r * np.cos(a), r * np.sin(a), rng.normal(0, 1, r.size), rng.uniform(0, 1, r.size)])
    base = replace(SampleConfig(), point_dropout=(0.0, 0.0))
    out = augment_scan(pts.astype(np.float32), np.random.default_rng(1), replace(base, range_crop_prob=1.0))
    assert np.hypot(out[:, 0], out[:, 1]).max() <= base.range_crop_m[1]
    out = augment_scan(
        pts.astype(np.float32), np.random.default_rng(1), replace(base, sector_dropout_prob=1.0)
    )
    az = np.sort(np.arctan2(out[:, 1], out[:, 0]))
    gaps = np.diff(np.concatenate([az, az[:1] + 2 * np.pi]))
    assert np.degrees(gaps.max()) >= base.sector_dropout_deg[0]
    plain = augment_scan(pts.astype(np.float32), np.random.default_rng(2), base)
    assert len(plain) == len(pts)  # off by default: only intensity jitter
    assert not np.array_equal(plain[:, 3], pts[:, 3].astype(np.float32))


def test_every_test_time_view_is_turned_back_onto_the_prior_grid(small_town):
    """Each view (the world turned and mirrored about the prior) is scored in its own frame and turned back: the
    trained model must find the truth through every one of them, and through their average. A view turned back
    the wrong way would peak metres off (the prior is 6 m and 4 deg away)."""
    from translocnet_ros.localization.translocnet import DEFAULT_MODEL
    from translocnet_ros.model.views import VIEWS

    loc = TransLocNetLocalizer(DEFAULT_MODEL, device="cpu", views=8)
    assert len(loc.views) == 8 and len(set(loc.views)) == 8
    drive = KittiDrive(small_town / "drive_00")
    src = GeoTiffSource(small_town / "ortho.tif")
    gt = drive.ground_truth(MapFrame.from_any(src.crs)).poses[4]
    prior = gt.offset(5.0, -3.5, np.radians(4.0))
    window = SearchWindow(12.0, np.radians(8))
    scan = drive.scan_base(4)
    for view in VIEWS[8]:
        loc.views = (view,)
        est = loc.localize(scan, src, prior, window)
        assert np.hypot(est.pose.x - gt.x, est.pose.y - gt.y) < 1.5, view
        assert abs(np.degrees(est.pose.yaw - gt.yaw)) < 2.0, view
    loc.views = VIEWS[8]
    est = loc.localize(scan, src, prior, window)
    assert np.hypot(est.pose.x - gt.x, est.pose.y - gt.y) < 1.5
    with pytest.raises(ValueError, match="views must be one of"):
        TransLocNetLocalizer(DEFAULT_MODEL, device="cpu", views=3)
