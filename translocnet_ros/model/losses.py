"""Training losses: NLL of the true pose in the likelihood volume, InfoNCE between co-located cells, and the
aerial features' disagreement between an orthophoto and its shadow-free twin."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from translocnet_ros.model.network import rotate


def volume_nll(logits: torch.Tensor, k: int, i: int, j: int) -> torch.Tensor:
    """-log p(true yaw bin k, row i, col j) under the softmax over the whole (K, H, W) volume."""
    return torch.logsumexp(logits.flatten(), 0) - logits[k, i, j]


def subcell_loss(logits: torch.Tensor, k: int, i: int, j: int, frac: torch.Tensor) -> torch.Tensor:
    """Where a parabola through the true cell and its row / column neighbours peaks, against where the truth
    lies inside that cell (frac: rows, cols, in cells). The NLL is blind to a pull that keeps the argmax in the
    true cell (up to half a cell: docs/real_gap.md, shadows), the decoder's sub-cell refinement is not; this
    makes the volume's shape around the truth answer for it. Smooth L1; a cell on the volume's border or a
    non-concave triple gives no gradient."""
    _, h, w = logits.shape
    if not (0 < i < h - 1 and 0 < j < w - 1):
        return logits.sum() * 0.0
    # rows, then columns; masked rather than branched on, so no host sync per sample on a GPU
    lo = torch.stack([logits[k, i - 1, j], logits[k, i, j - 1]])
    hi = torch.stack([logits[k, i + 1, j], logits[k, i, j + 1]])
    curvature = lo - 2 * logits[k, i, j] + hi
    concave = curvature <= -1e-3
    peak = (0.5 * (lo - hi) / torch.where(concave, curvature, -torch.ones_like(curvature))).clamp(-1.0, 1.0)
    loss = F.smooth_l1_loss(peak, frac.to(peak.dtype), beta=0.25, reduction="none")
    return torch.where(concave, loss, torch.zeros_like(loss)).sum()


def info_nce(
    mb: torch.Tensor,
    ma: torch.Tensor,
    observed: torch.Tensor,
    true_yaw: torch.Tensor,
    i: int,
    j: int,
    n_cells: int = 128,
    tau: float = 0.07,
    hard_px: tuple[int, int] = (4, 12),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pull each observed LiDAR cell's feature to the aerial feature at the same world point; push it from the
    other sampled points and from hard negatives a few metres away (as in Sample4Geo).

    mb (1, D, S, S) vehicle-aligned, ma (D, A, A) north-up, template top-left at aerial (i, j)."""
    lb = rotate(mb, true_yaw.view(1))[0]
    mask = rotate(observed, true_yaw.view(1))[0, 0] > 0.5
    rows, cols = torch.nonzero(mask, as_tuple=True)
    if rows.numel() < 8:
        return mb.sum() * 0.0
    pick = torch.randperm(rows.numel(), generator=generator)[:n_cells]
    rows, cols = rows[pick], cols[pick]
    anchors = F.normalize(lb[:, rows, cols].T, dim=1)
    pos = ma[:, rows + i, cols + j].T
    ang = torch.rand(rows.numel(), generator=generator) * 2 * torch.pi
    rad = torch.randint(hard_px[0], hard_px[1] + 1, (rows.numel(),), generator=generator)
    a = ma.shape[-1]
    hr = (rows + i + (rad * ang.sin()).round().long()).clamp(0, a - 1)
    hc = (cols + j + (rad * ang.cos()).round().long()).clamp(0, a - 1)
    neg = ma[:, hr, hc].T
    logits = anchors @ torch.cat([pos, neg]).T / tau
    return F.cross_entropy(logits, torch.arange(rows.numel()))


def shadow_disagreement(
    ma: torch.Tensor,
    ma_twin: torch.Tensor,
    aerial: torch.Tensor,
    twin: torch.Tensor,
    paired: torch.Tensor,
    shaded_cells: bool = False,
) -> torch.Tensor:
    """Mean over the paired samples of 1 - cosine between the aerial features of a patch (ma, differentiated)
    and of its shadow-free twin (ma_twin, the target), over every cell or, with `shaded_cells`, over the cells
    where the two uint8 renderings (aerial, twin) differ: the shadows and their edges."""
    agree_map = (ma * ma_twin.detach()).sum(1)
    if shaded_cells:
        differs = ((aerial.float() - twin.float()).abs().mean(1, keepdim=True) > 12).float()
        w = F.adaptive_avg_pool2d(differs, agree_map.shape[-2:])[:, 0]
        agree = 1 - ((1 - agree_map) * w).sum((1, 2)) / w.sum((1, 2)).clamp(min=1e-6)
    else:
        agree = agree_map.mean((1, 2))
    paired = paired.float()
    return ((1 - agree) * paired).sum() / paired.sum().clamp(min=1)
