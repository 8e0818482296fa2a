r"""The TransLocNet network.

    bev  (B, 8, S, S)  --BEV encoder---\                                   /--> BEV matching features
                                        >-- bidirectional cross-attention <
    aerial (B, 3, A, A) --aerial encoder/   (coarse tokens, 2-D sine PE)   \--> aerial matching features

The BEV features are rotated to each yaw hypothesis and correlated (FFT) with the aerial features over the
search window: the result, softmax-normalized over (yaw, y, x), is the likelihood volume.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from translocnet_ros.model.config import ModelConfig
from translocnet_ros.model.rasterize import rasterize_bev


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Encoder(nn.Module):
    """U-Net-lite: input at 0.5 m, output features at 1 m (stride 2), coarse tokens at 4 m for attention."""

    def __init__(self, cin: int, width: int, attn_dim: int, out_dim: int):
        super().__init__()
        w = [width, 2 * width, attn_dim]
        self.stem = nn.Sequential(conv_bn(cin, w[0], 2), conv_bn(w[0], w[0]))
        self.down = nn.ModuleList(
            [nn.Sequential(conv_bn(w[i], w[i + 1], 2), conv_bn(w[i + 1], w[i + 1])) for i in range(2)]
        )
        self.up = nn.ModuleList([conv_bn(w[i + 1] + w[i], w[i]) for i in (1, 0)])
        self.head = nn.Conv2d(w[0], out_dim, 1)

    def down_path(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for d in self.down:
            feats.append(d(feats[-1]))
        return feats

    def up_path(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[2]
        for k, up in enumerate(self.up):
            skip = feats[1 - k]
            x = resize_bilinear(x, skip.shape[-2:])
            x = up(torch.cat([x, skip], dim=1))
        return self.head(x)


def sine_pe(h: int, w: int, dim: int, cell_m: float, device: torch.device) -> torch.Tensor:
    """(h * w, dim) 2-D sinusoidal encoding of each token's metric position relative to the map centre."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) - (h - 1) / 2) * cell_m
    xs = (torch.arange(w, device=device, dtype=torch.float32) - (w - 1) / 2) * cell_m
    q = dim // 4
    freq = torch.exp(torch.arange(q, device=device, dtype=torch.float32) * (-math.log(1000.0) / q)) / 4.0
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    px = xx.reshape(-1, 1) * freq
    py = yy.reshape(-1, 1) * freq
    return torch.cat([px.sin(), px.cos(), py.sin(), py.cos()], dim=1)


def resize_bilinear(x: torch.Tensor, size: list[int]) -> torch.Tensor:
    """Bilinear resize through the one aten op it needs: scripting `F.interpolate` compiles all of its modes,
    and newer torch versions add ops (e.g. `_upsample_lanczos2d_aa`) that older ones cannot load."""
    return torch._C._nn.upsample_bilinear2d(x, [int(size[0]), int(size[1])], False, None, None)


class Attention(nn.Module):
    """Multi-head attention with `nn.MultiheadAttention`'s parameter layout (so weights load either way) but
    plain matmul/softmax ops: the scripted `nn.MultiheadAttention` carries fast paths whose ops change between
    torch versions."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, nq, d = q.shape
        nk = k.shape[1]
        h = self.heads
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)
        qh = F.linear(q, wq, bq).view(b, nq, h, d // h).transpose(1, 2)
        kh = F.linear(k, wk, bk).view(b, nk, h, d // h).transpose(1, 2)
        vh = F.linear(v, wv, bv).view(b, nk, h, d // h).transpose(1, 2)
        attn = torch.softmax(torch.matmul(qh, kh.transpose(-2, -1)) * (d // h) ** -0.5, dim=-1)
        return self.out_proj(torch.matmul(attn, vh).transpose(1, 2).reshape(b, nq, d))


class CrossBlock(nn.Module):
    """queries attend to context, then a feed-forward layer (pre-norm, residual)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.nq, self.nc, self.nf = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(
        self, q: torch.Tensor, q_pe: torch.Tensor, c: torch.Tensor, c_pe: torch.Tensor
    ) -> torch.Tensor:
        cn = self.nc(c)
        q = q + self.attn(self.nq(q) + q_pe, cn + c_pe, cn)
        return q + self.ff(self.nf(q))


class BidirectionalCrossAttention(nn.Module):
    """LiDAR tokens read the aerial context, then aerial tokens read the updated LiDAR tokens."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.lidar_from_aerial = CrossBlock(dim, heads)
        self.aerial_from_lidar = CrossBlock(dim, heads)

    def forward(self, lidar: torch.Tensor, aerial: torch.Tensor, cell_m: float):
        b, c, hl, wl = lidar.shape
        ha, wa = aerial.shape[-2:]
        pl = sine_pe(hl, wl, c, cell_m, lidar.device)[None]
        pa = sine_pe(ha, wa, c, cell_m, aerial.device)[None]
        tl = lidar.flatten(2).transpose(1, 2)
        ta = aerial.flatten(2).transpose(1, 2)
        tl = self.lidar_from_aerial(tl, pl, ta, pa)
        ta = self.aerial_from_lidar(ta, pa, tl, pl)
        return tl.transpose(1, 2).reshape(b, c, hl, wl), ta.transpose(1, 2).reshape(b, c, ha, wa)


def rotate(x: torch.Tensor, yaws: torch.Tensor) -> torch.Tensor:
    """Rotate a vehicle-aligned map (1, C, S, S) counter-clockwise (map frame) by each yaw -> (K, C, S, S)."""
    c, s = torch.cos(yaws), torch.sin(yaws)
    z = torch.zeros_like(c)
    theta = torch.stack([torch.stack([c, -s, z], 1), torch.stack([s, c, z], 1)], 1)
    # the aten ops behind F.affine_grid / F.grid_sample (bilinear, zero padding): their scripted wrappers
    # compile every mode, and the set of modes grows with torch versions
    grid = torch.affine_grid_generator(theta, [yaws.shape[0], x.shape[1], x.shape[2], x.shape[3]], False)
    return torch.grid_sampler(x.expand(yaws.shape[0], -1, -1, -1), grid, 0, 0, False)


def spectrum(x: torch.Tensor, n: int) -> torch.Tensor:
    """2-D FFT of real maps (..., h, w) zero-padded to (n, n), half spectrum along the last axis."""
    return torch.fft.rfft2(x, s=(n, n))


def correlate_spectra(fa: torch.Tensor, templates: torch.Tensor, a: int) -> torch.Tensor:
    """Valid cross-correlation of an aerial map of side a, given as its spectrum (C, a, a // 2 + 1), with
    templates (K, C, S, S) -> (K, a - S + 1, a - S + 1). The channel sum is a broadcast multiply-add (an
    einsum here becomes thousands of tiny complex matmuls on the CPU)."""
    n_out = a - templates.shape[-1] + 1
    prod = (fa.unsqueeze(0) * spectrum(templates, a).conj()).sum(dim=1)
    return torch.fft.irfft2(prod, s=(a, a))[:, :n_out, :n_out]


def correlate(aerial: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """Valid cross-correlation by FFT: aerial (C, A, A), templates (K, C, S, S) -> (K, A - S + 1, A - S + 1)."""
    a = aerial.shape[-1]
    return correlate_spectra(spectrum(aerial, a), templates, a)


class TransLocNet(nn.Module):
    def __init__(self, cfg: ModelConfig, cross_attention: bool = True):
        super().__init__()
        self.m_per_px = cfg.m_per_px
        self.bev_px = cfg.bev_px
        self.stride = cfg.stride
        self.ground_block_m = cfg.ground_block_m
        self.max_height_m = cfg.max_height_m
        self.use_attention = cross_attention
        self.patch_norm = cfg.aerial_norm == "patch"
        self.bev_encoder = Encoder(cfg.bev_channels, cfg.width, cfg.attn_dim, cfg.match_dim)
        self.aerial_encoder = Encoder(3, cfg.width, cfg.attn_dim, cfg.match_dim)
        self.cross = BidirectionalCrossAttention(cfg.attn_dim, cfg.attn_heads)
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.register_buffer("rgb_mean", torch.tensor([0.45, 0.45, 0.42]).view(1, 3, 1, 1))
        self.register_buffer("rgb_std", torch.tensor([0.22, 0.21, 0.21]).view(1, 3, 1, 1))

    def features(self, bev: torch.Tensor, aerial_rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Matching features: bev (B, 8, S, S), aerial_rgb (B, 3, A, A) uint8 -> L2-normalized maps."""
        aerial = aerial_rgb.float() / 255.0
        if self.patch_norm:
            mean = aerial.mean(dim=[2, 3], keepdim=True)
            aerial = (aerial - mean) / (aerial - mean).pow(2).mean(dim=[2, 3], keepdim=True).add(1e-4).sqrt()
        else:
            aerial = (aerial - self.rgb_mean) / self.rgb_std
        fb = self.bev_encoder.down_path(bev)
        fa = self.aerial_encoder.down_path(aerial)
        if self.use_attention:
            fb[2], fa[2] = self.cross(fb[2], fa[2], self.m_per_px * 8.0)
        mb = F.normalize(self.bev_encoder.up_path(fb), dim=1)
        ma = F.normalize(self.aerial_encoder.up_path(fa), dim=1)
        return mb, ma

    @torch.jit.export
    def encode(
        self, points: torch.Tensor, aerial_rgb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One scan (N, 4) in base_link and one aerial patch (3, A, A) uint8 -> BEV features (1, D, s, s),
        aerial features (D, a, a) and the mask of observed BEV cells (1, 1, s, s), all at 1 m."""
        bev, observed = rasterize_bev(
            points, self.bev_px, self.m_per_px, self.ground_block_m, self.max_height_m
        )
        mb, ma = self.features(bev[None], aerial_rgb[None])
        return mb, ma[0], F.max_pool2d(observed[None], self.stride)

    @torch.jit.export
    def score(
        self, mb: torch.Tensor, ma: torch.Tensor, observed: torch.Tensor, yaws: torch.Tensor, chunk: int = 24
    ) -> torch.Tensor:
        """Unnormalized log-likelihood (K, H, W) over absolute yaw hypotheses and positions in the window.
        Yaws are processed `chunk` at a time (bounded memory); the aerial spectrum is computed once."""
        a = ma.shape[-1]
        fa = spectrum(ma, a)
        out: list[torch.Tensor] = []
        for y in yaws.split(chunk):
            count = rotate(observed, y).sum(dim=(1, 2, 3)).clamp(min=1.0)
            corr = correlate_spectra(fa, rotate(mb * observed, y), a)
            out.append(corr / count.view(-1, 1, 1) * self.log_scale.exp() * 10.0)
        return torch.cat(out)

    def forward(self, points: torch.Tensor, aerial_rgb: torch.Tensor, yaws: torch.Tensor) -> torch.Tensor:
        """One scan (N, 4) base_link, aerial (3, A, A) uint8 north-up centred on the prior, absolute yaw
        hypotheses (K,) -> logits (K, A - S + 1, A - S + 1)."""
        mb, ma, observed = self.encode(points, aerial_rgb)
        return self.score(mb, ma, observed, yaws, 24)
