"""Feature-statistics mixing in the aerial encoder's early layers, during training only (domain
generalization in the spirit of MixStyle, Zhou et al., ICLR 2021).

Image-level augmentation only reaches the appearances we can think of; real orthophotos differ from the
generator's also in ways that are hard to write down (sensor, mosaicking, compression). Early CNN features
carry an image's "style" in their per-channel mean and standard deviation, so mixing those statistics between
the samples of a batch (and jittering them) makes the encoder see new styles with the same content and key on
layout. It is a forward hook installed by `translocnet train --style-mix P`, never part of the model, so the
exported TorchScript graph is unchanged and inference is not affected.
"""

from __future__ import annotations

import torch
from torch import nn


class StyleMix:
    """Forward hook: with probability p, re-styles a module's output (B, C, H, W) with a random convex mix of
    its own and another sample's channel statistics, plus a small Gaussian jitter of those statistics."""

    def __init__(self, p: float, alpha: float = 0.1, jitter: float = 0.1, seed: int = 0):
        self.p, self.jitter = p, jitter
        self.beta = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha))
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, module: nn.Module, inputs, out: torch.Tensor) -> torch.Tensor | None:
        if not module.training or torch.rand((), generator=self.gen) >= self.p:
            return None
        b = out.shape[0]
        mu = out.mean(dim=(2, 3), keepdim=True).detach()
        sigma = (out.var(dim=(2, 3), keepdim=True) + 1e-6).sqrt().detach()
        normed = (out - mu) / sigma
        lam = self.beta.sample((b, 1, 1, 1)).to(out.device)
        perm = torch.randperm(b, generator=self.gen).to(out.device)
        mu_mix = lam * mu + (1 - lam) * mu[perm]
        sigma_mix = lam * sigma + (1 - lam) * sigma[perm]
        noise = torch.randn((2, *mu.shape), generator=self.gen).to(out.device) * self.jitter
        return normed * sigma_mix * (1 + noise[1]) + mu_mix + noise[0] * sigma_mix


def attach_style_mix(encoder: nn.Module, p: float, seed: int = 0) -> list:
    """Hooks on the encoder's stem and first down-sampling stage (where style, not layout, lives); returns
    the handles (remove() to detach)."""
    mix = StyleMix(p, seed=seed)
    return [encoder.stem.register_forward_hook(mix), encoder.down[0].register_forward_hook(mix)]
