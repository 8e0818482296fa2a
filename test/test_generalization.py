"""Training-side measures for real imagery: palettes the generator never had, another LiDAR's reflectance,
and an aerial input normalization that cancels a camera's brightness and colour cast."""

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from translocnet_ros.model.config import ModelConfig
from translocnet_ros.model.data import SampleConfig, TownFrames, augment_scan, repaint, town_drives
from translocnet_ros.model.network import TransLocNet
from translocnet_ros.model.views import WorldTurn
from translocnet_ros.synth.town import SHADOW_FREE_ORTHO

CFG = ModelConfig(width=8, match_dim=8, attn_dim=16, attn_heads=2)


def _blocks(seed: int = 0) -> np.ndarray:
    """An aerial-like image: coloured rectangles (roofs, lawns) on a grey road."""
    rng = np.random.default_rng(seed)
    img = np.full((96, 96, 3), 110, np.uint8)
    for _ in range(12):
        r, c = rng.integers(0, 80, 2)
        img[r : r + rng.integers(6, 16), c : c + rng.integers(6, 16)] = rng.integers(30, 230, 3)
    return img


def test_repaint_changes_the_palette_but_keeps_the_edges():
    img = _blocks()
    edges = cv2.Canny(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), 20, 60) > 0
    changed = 0
    for seed in range(8):
        out = repaint(img, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.uint8
        changed += np.abs(out.astype(int) - img).mean() > 10
        out_edges = cv2.Canny(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), 5, 15) > 0
        near = cv2.dilate(out_edges.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert near[edges].mean() > 0.6  # shapes survive the new palette
    assert changed >= 6
    np.testing.assert_array_equal(
        repaint(img, np.random.default_rng(3)), repaint(img, np.random.default_rng(3))
    )


def test_intensity_drop_replaces_the_sensor_response():
    pts = np.column_stack([np.random.default_rng(0).uniform(-20, 20, (5000, 3)), np.linspace(0, 1, 5000)])
    s = replace(SampleConfig(), point_dropout=(0.0, 0.0), intensity_drop_prob=1.0)
    outs = [augment_scan(pts.astype(np.float32).copy(), np.random.default_rng(k), s)[:, 3] for k in range(6)]
    # either flat (no reflectance at all) or a rescaled response: never the original one
    assert all(np.abs(o - pts[:, 3]).mean() > 0.02 for o in outs)
    assert any(o.std() < 0.05 for o in outs) and any(o.std() > 0.1 for o in outs)
    off = augment_scan(
        pts.astype(np.float32).copy(), np.random.default_rng(0), replace(s, intensity_drop_prob=0)
    )
    assert np.corrcoef(off[:, 3], pts[:, 3])[0, 1] > 0.95


def test_patch_normalization_cancels_brightness_and_contrast():
    torch.manual_seed(0)
    img = torch.from_numpy(_blocks(1).transpose(2, 0, 1).copy())[None]
    darker = (img.float() * 0.6 + 20).round().to(torch.uint8)
    bev = torch.zeros(1, 8, CFG.bev_px, CFG.bev_px)

    def gap(cfg):
        net = TransLocNet(cfg).eval()
        with torch.no_grad():
            return (net.features(bev, img)[1] - net.features(bev, darker)[1]).abs().mean().item()

    assert gap(replace(CFG, aerial_norm="patch")) < 0.2 * gap(CFG)


def test_labelled_real_drives_join_the_training_frames(small_town):
    from conftest import HELSINKI

    from translocnet_ros.model.data import TownFrames, town_drives

    site = sorted(p for p in HELSINKI.iterdir() if (p / "ortho.tif").exists())[0]
    synth = town_drives(small_town)
    frames = TownFrames(
        [*synth, (site / "drive", site / "ortho.tif")],
        ModelConfig(),
        replace(SampleConfig(), window_m=6.0),
        repeat=[1] * len(synth) + [3],
    )
    assert len(frames) == 12 + 3 * 10
    sample = frames[len(frames) - 1]  # a real frame: aerial patch from the site's orthophoto
    assert sample["aerial"].shape == (3, 2 * (6 + 32) * 2, 2 * (6 + 32) * 2)
    assert sample["aerial"].float().std() > 5 and sample["observed"].sum() > 500


def test_style_mix_restyles_early_features_in_training_only():
    """The hook mixes channel statistics between samples in training (each output channel's mean moves
    between the two samples' means, layout kept) and is the identity in eval, so export is unaffected."""
    from torch import nn

    from translocnet_ros.model.style_mix import StyleMix

    layer = nn.Identity()
    layer.register_forward_hook(StyleMix(p=1.0, alpha=0.5, jitter=0.0, seed=3))
    base = torch.rand(1, 2, 16, 16)
    x = torch.cat([base, base * 4.0 + 10.0])  # same layout, two styles
    layer.eval()
    assert torch.equal(layer(x), x)
    layer.train()
    mixed = {tuple(layer(x).mean(dim=(2, 3)).round(decimals=3).flatten().tolist()) for _ in range(8)}
    assert len(mixed) > 1  # random mixes
    out = layer(x)
    means = out.mean(dim=(2, 3))
    assert (means >= x.mean(dim=(2, 3))[0] - 1e-4).all() and (means <= x.mean(dim=(2, 3))[1] + 1e-4).all()
    # content is kept: each output is an affine map of its own input, channel by channel
    for b in range(2):
        for c in range(2):
            r = np.corrcoef(out[b, c].flatten().numpy(), x[b, c].flatten().numpy())[0, 1]
            assert r > 0.999


def _pixel_of(point_body, cell, yaw, n_px, m_per_px=0.5, cell_m=1.0):
    """(row, col) of the image pixel under a scan point, the vehicle at cell (di, dj) off the patch centre."""
    di, dj = cell
    c, s = np.cos(yaw), np.sin(yaw)
    x = dj * cell_m + c * point_body[0] - s * point_body[1]
    y = -di * cell_m + s * point_body[0] + c * point_body[1]
    return int(np.floor(n_px / 2 - y / m_per_px)), int(np.floor(n_px / 2 + x / m_per_px))


def test_world_turn_keeps_every_scan_point_on_the_same_ground():
    """Turned and mirrored, a sample must still be the same localization problem: each scan point, placed with
    the turned target cell and heading, lands on the same image content as before the turn."""
    rng = np.random.default_rng(3)
    n = 64
    cell, yaw = (3, -5), 0.4
    pts = np.c_[rng.uniform(-8, 8, (40, 2)), np.zeros((40, 2))].astype(np.float32)
    img = np.zeros((n, n, 3), np.uint8)
    for k, p in enumerate(pts):
        img[_pixel_of(p, cell, yaw, n)] = 10 + k  # each point's own mark
    seen = 0
    for quarter in range(4):
        for mirror in (False, True):
            t = WorldTurn(quarter, mirror)
            timg, tpts = t.image(img), t.scan(pts)
            for k, p in enumerate(tpts):
                r, c = _pixel_of(p, t.cell(*cell), t.yaw(yaw), n)
                if img[_pixel_of(pts[k], cell, yaw, n)][0] == 10 + k:  # mark not overwritten by a later point
                    assert timg[r, c, 0] == 10 + k, (quarter, mirror, k)
                    seen += 1
    assert seen > 8 * 30


def test_dihedral_samples_turn_imagery_and_target_together(small_town):
    """With dihedral_prob 1 the sample's aerial patch is a turned copy of the plain one and the target moves
    with it; the yaw hypotheses stay centred on the (turned) prior."""
    drives = town_drives(small_town)
    plain = TownFrames(
        drives, CFG, replace(SampleConfig(), color_jitter=0.0, point_dropout=(0.0, 0.0)), seed=4
    )
    turned = TownFrames(
        drives,
        CFG,
        replace(SampleConfig(), color_jitter=0.0, point_dropout=(0.0, 0.0), dihedral_prob=1.0),
        seed=4,
    )
    found = set()
    for index in range(12):
        a, b = plain[index], turned[index]
        matches = [
            (q, m)
            for q in range(4)
            for m in (False, True)
            if np.array_equal(
                WorldTurn(q, m).image(a["aerial"].permute(1, 2, 0).numpy()), b["aerial"].permute(1, 2, 0)
            )
        ]
        assert matches, index
        q, m = matches[0]
        found.add((q, m))
        t = WorldTurn(q, m)
        n_cells = int(round(SampleConfig().window_m / CFG.out_m_per_px))
        di, dj = t.cell(a["target"][1].item() - n_cells, a["target"][2].item() - n_cells)
        assert b["target"][1].item() == n_cells + di and b["target"][2].item() == n_cells + dj
        kb = a["target"][0].item()
        assert b["target"][0].item() == (SampleConfig().yaw_bins - 1 - kb if m else kb)
        assert np.isclose(float(b["true_yaw"]), t.yaw(float(a["true_yaw"])), atol=1e-5)
    assert len(found) >= 3  # several turns drawn


def test_harsh_sun_training_draws_the_train_towns_so_and_keeps_the_val_towns(tmp_path):
    from translocnet_ros.model.train import split_jobs

    train, val = split_jobs(tmp_path, 3, 2, harsh_sun=True)
    assert [p.parent for p, _ in train + val] == [tmp_path] * 5
    assert all(s.harsh_sun for _, s in train) and not any(s.harsh_sun for _, s in val)
    plain, _ = split_jobs(tmp_path, 3, 2)
    assert [p for p, _ in plain] == [p for p, _ in train]  # same towns, same folders: only the sun differs
    assert not any(s.harsh_sun for _, s in plain)


def _twin_frames(town, tmp_path, twin_image=None, **sample):
    """The town's frames with a shadow-free twin beside its orthophoto: a copy of it, or `twin_image`."""
    import shutil

    import rasterio

    copy = tmp_path / "town"
    shutil.copytree(town, copy)
    if twin_image is None:
        shutil.copy(copy / "ortho.tif", copy / SHADOW_FREE_ORTHO)
    else:
        with rasterio.open(copy / "ortho.tif") as ds:
            profile, img = ds.profile, ds.read()
        with rasterio.open(copy / SHADOW_FREE_ORTHO, "w", **profile) as ds:
            ds.write(twin_image(img))
    cfg = replace(SampleConfig(), shadow_twin=True, palette_prob=1.0, blur_prob=1.0, **sample)
    return TownFrames(town_drives(copy), CFG, cfg, seed=3)


def test_shadow_twin_patches_share_crop_augmentation_and_turn(small_town, tmp_path):
    """The twin is cut at the same window and recoloured and turned with the same draws: a twin identical to
    the orthophoto comes back identical under every augmentation; a darker twin stays darker; and the plain
    sample's draws are those of a run without twins."""
    same = _twin_frames(small_town, tmp_path / "a", dihedral_prob=0.5)
    plain = TownFrames(
        town_drives(small_town),
        CFG,
        replace(SampleConfig(), palette_prob=1.0, blur_prob=1.0, dihedral_prob=0.5),
        seed=3,
    )
    for index in range(6):
        s, p = same[index], plain[index]
        assert bool(s["has_twin"]) and torch.equal(s["twin"], s["aerial"])
        assert torch.equal(s["aerial"], p["aerial"]) and torch.equal(s["target"], p["target"])
    dark = _twin_frames(small_town, tmp_path / "b", twin_image=lambda img: (img * 0.5).astype(np.uint8))
    for index in range(6):
        s = dark[index]
        assert s["twin"].float().mean() < s["aerial"].float().mean() - 5


def test_shadow_consistency_is_zero_for_identical_renderings_and_trains_the_aerial_side(small_town, tmp_path):
    from torch.utils.data import DataLoader

    from translocnet_ros.model.train import batch_losses

    torch.manual_seed(0)
    net = TransLocNet(CFG)
    batch = next(iter(DataLoader(_twin_frames(small_town, tmp_path / "a"), batch_size=2)))
    *_, shadow = batch_losses(net, batch, 0.0, None, shadow_weight=1.0)
    assert shadow.item() == pytest.approx(0.0, abs=1e-5)

    flipped = dict(batch, twin=batch["twin"].flip(-1))  # another picture: the features disagree
    total, nll, _, shadow = batch_losses(net, flipped, 0.0, None, shadow_weight=1.0)
    assert shadow.item() > 0.01 and total.item() == pytest.approx((nll + shadow).item(), rel=1e-5)
    shadow.backward()
    grads = {n for n, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("aerial_encoder") for n in grads)
    unpaired = dict(flipped, has_twin=torch.zeros(2, dtype=torch.bool))  # real drives carry no twin
    assert batch_losses(net, unpaired, 0.0, None, shadow_weight=1.0)[3].item() == 0.0


def test_shadow_consistency_against_a_frozen_teacher(small_town, tmp_path):
    """--shadow-target init: the target is a frozen copy's view of the shadow-free twin; the student alone learns."""
    import copy

    from torch.utils.data import DataLoader

    from translocnet_ros.model.train import batch_losses

    torch.manual_seed(1)
    net = TransLocNet(CFG).eval()  # eval: the same normalization as the teacher's
    teacher = copy.deepcopy(net).requires_grad_(False)
    batch = next(iter(DataLoader(_twin_frames(small_town, tmp_path / "a"), batch_size=2)))
    assert batch_losses(net, batch, 0.0, None, shadow_weight=1.0, teacher=teacher)[3].item() == pytest.approx(
        0.0, abs=1e-5
    )
    flipped = dict(batch, twin=batch["twin"].flip(-1))
    shadow = batch_losses(net, flipped, 0.0, None, shadow_weight=1.0, teacher=teacher)[3]
    assert shadow.item() > 0.01
    shadow.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.aerial_encoder.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_shadow_consistency_can_count_only_the_cells_where_the_renderings_differ(small_town, tmp_path):
    """--shadow-cells shaded: the disagreement is averaged over the cells a shadow touches, not diluted by the
    rest of the patch; a pair without any difference costs nothing."""
    import copy

    from torch.utils.data import DataLoader

    from translocnet_ros.model.train import batch_losses

    torch.manual_seed(2)
    net = TransLocNet(CFG).eval()
    teacher = copy.deepcopy(net).requires_grad_(False)
    batch = next(iter(DataLoader(_twin_frames(small_town, tmp_path / "a"), batch_size=2)))
    assert (
        batch_losses(net, batch, 0.0, None, shadow_weight=1.0, teacher=teacher, shaded_cells=True)[3].item()
        == 0.0
    )
    shaded = batch["twin"].clone()
    shaded[..., 40:70, 40:70] //= 4  # one dark shadow in the corner of the patch
    pair = dict(batch, twin=shaded)
    everywhere = batch_losses(net, pair, 0.0, None, shadow_weight=1.0, teacher=teacher)[3].item()
    focused = batch_losses(net, pair, 0.0, None, shadow_weight=1.0, teacher=teacher, shaded_cells=True)[
        3
    ].item()
    assert 0 < everywhere < 0.5 * focused


def test_init_weights_come_from_a_checkpoint_or_an_exported_model(tmp_path):
    from translocnet_ros.model.train import initial_weights

    torch.manual_seed(3)
    net = TransLocNet(CFG).eval()
    torch.save({"model": net.state_dict()}, tmp_path / "best.pt")
    torch.jit.script(net).save(str(tmp_path / "model.pt"))
    a = initial_weights(tmp_path / "best.pt", torch.device("cpu"))
    b = initial_weights(tmp_path / "model.pt", torch.device("cpu"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_capacity_options_size_the_network():
    import argparse

    from translocnet_ros.model.train import add_arguments, model_config

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert model_config(p.parse_args([])) == ModelConfig()
    wide = model_config(p.parse_args(["--width", "40", "--match-dim", "12", "--aerial-norm", "patch"]))
    assert (wide.width, wide.match_dim, wide.aerial_norm) == (40, 12, "patch")
    narrow, big = TransLocNet(ModelConfig()), TransLocNet(wide)
    n = sum(q.numel() for q in narrow.parameters())
    assert sum(q.numel() for q in big.parameters()) > 1.5 * n
    assert big.aerial_encoder.head.out_channels == 12


def test_init_or_resume_of_another_size_exits_with_a_clear_message(tmp_path):
    from translocnet_ros.model.train import load_initial, load_weights

    torch.save({"model": TransLocNet(CFG).state_dict()}, tmp_path / "best.pt")
    wider = TransLocNet(replace(CFG, width=12))
    with pytest.raises(SystemExit, match="--width / --match-dim"):
        load_initial(wider, tmp_path / "best.pt", torch.device("cpu"))
    same = TransLocNet(CFG)
    load_initial(same, tmp_path / "best.pt", torch.device("cpu"))
    ref = torch.load(tmp_path / "best.pt")["model"]
    assert all(torch.equal(same.state_dict()[k], ref[k]) for k in ref)
    # resuming a run directory with other capacity options: the same message, naming the checkpoint
    with pytest.raises(SystemExit, match=r"last\.pt: its weights do not fit"):
        load_weights(wider, ref, tmp_path / "last.pt")
