"""SegNeXt's light Hamburger decoder: global context by non-negative matrix factorisation
(Geng et al., "Is Attention Better Than Matrix Decomposition?", ICLR 2021)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["NMF2D", "ConvGNAct", "Hamburger", "LightHamDecoder"]


class ConvGNAct(nn.Sequential):
    """1x1-style Conv2d (no bias) -> GroupNorm -> optional ReLU, with MMSegmentation's
    ``ConvModule`` parameter names (``conv``, ``gn``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        num_groups: int = 32,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False
        )
        self.gn = nn.GroupNorm(num_groups, out_channels)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()


class NMF2D(nn.Module):
    """Low-rank reconstruction of a non-negative map by NMF with multiplicative updates.

    The map ``(N, C, H, W)`` is read as ``S`` matrices ``X`` of shape ``(C/S, HW)`` and
    approximated by ``bases (C/S, R) @ coef^T (R, HW)``; the reconstruction replaces it.
    Coefficients start as the softmax of ``inv_t * X^T bases``; ``train_steps`` / ``eval_steps``
    updates follow, then one more coefficient update. Gradients flow through every step (as in
    MMSegmentation; the original HamNet code runs the iterations without gradient).

    With ``rand_init`` (MMSegmentation's default) the bases are drawn afresh from ``U(0, 1)``
    for every image in every forward pass (global RNG, L2-normalised per column), so outputs
    vary slightly between calls, as in MMSegmentation. Without it, one set of bases is drawn at
    construction and kept in the ``bases`` buffer (saved with the weights).

    The factorisation runs in float32 even under autocast (its ratios need the range).
    """

    def __init__(
        self,
        channels: int,
        md_s: int = 1,
        md_r: int = 64,
        train_steps: int = 6,
        eval_steps: int = 7,
        inv_t: float = 1.0,
        rand_init: bool = True,
    ) -> None:
        super().__init__()
        if channels % md_s:
            raise ValueError(f"channels {channels} not divisible by md_s {md_s}")
        self.S, self.R = md_s, md_r
        self.train_steps, self.eval_steps = train_steps, eval_steps
        self.inv_t = inv_t
        self.rand_init = rand_init
        if not rand_init:
            self.register_buffer("bases", self._draw_bases(md_s, channels // md_s))

    def _draw_bases(self, n: int, dims: int, device: torch.device | None = None) -> Tensor:
        """``n`` random non-negative bases ``(dims, R)`` with unit-norm columns."""
        return F.normalize(torch.rand((n, dims, self.R), device=device), dim=1)

    @staticmethod
    def _update_coef(x: Tensor, bases: Tensor, coef: Tensor) -> Tensor:
        numerator = torch.bmm(x.transpose(1, 2), bases)
        denominator = coef.bmm(bases.transpose(1, 2).bmm(bases))
        return coef * numerator / (denominator + 1e-6)

    @staticmethod
    def _update_bases(x: Tensor, bases: Tensor, coef: Tensor) -> Tensor:
        numerator = torch.bmm(x, coef)
        denominator = bases.bmm(coef.transpose(1, 2).bmm(coef))
        return bases * numerator / (denominator + 1e-6)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` non-negative -> its rank-``R`` reconstruction, same shape."""
        n, c, h, w = x.shape
        dtype = x.dtype
        # fp32 under autocast; the meta device (FLOP counting) has no autocast to turn off
        no_autocast = (
            torch.autocast(x.device.type, enabled=False)
            if x.device.type != "meta"
            else contextlib.nullcontext()
        )
        with no_autocast:
            x = x.float().reshape(n * self.S, c // self.S, h * w)
            if self.rand_init:
                bases = self._draw_bases(n * self.S, c // self.S, x.device)
            else:
                bases = self.bases.float().repeat(n, 1, 1)
            coef = F.softmax(self.inv_t * torch.bmm(x.transpose(1, 2), bases), dim=-1)
            for _ in range(self.train_steps if self.training else self.eval_steps):
                coef = self._update_coef(x, bases, coef)
                bases = self._update_bases(x, bases, coef)
            coef = self._update_coef(x, bases, coef)
            out = torch.bmm(bases, coef.transpose(1, 2))
        return out.reshape(n, c, h, w).to(dtype)


class Hamburger(nn.Module):
    """1x1 conv + ReLU ("lower bread"), :class:`NMF2D` ("ham"), 1x1 conv + GroupNorm ("upper
    bread"), added to the input, ReLU. ``(N, C, H, W)`` -> same."""

    def __init__(self, channels: int, num_groups: int = 32, **nmf_kwargs) -> None:
        super().__init__()
        self.ham_in = nn.Sequential()
        self.ham_in.add_module("conv", nn.Conv2d(channels, channels, 1))
        self.ham = NMF2D(channels, **nmf_kwargs)
        self.ham_out = ConvGNAct(channels, channels, 1, num_groups, act=False)

    def forward(self, x: Tensor) -> Tensor:
        enjoy = self.ham_out(self.ham(F.relu(self.ham_in(x))))
        return F.relu(x + enjoy)


class LightHamDecoder(nn.Module):
    """SegNeXt's decoder (MMSegmentation's ``LightHamHead``): the stages in ``in_index`` are
    upsampled to the first one's size and concatenated, squeezed to ``ham_channels`` (1x1 conv,
    GroupNorm, ReLU), passed through a :class:`Hamburger`, and aligned to ``channels`` likewise.

    Args:
        in_channels, in_strides: the encoder's stages (given by the segmentor).
        channels, ham_channels: output and Hamburger widths.
        in_index: the stages used (MMSeg: the last three, strides 8-32).
        num_groups: GroupNorm groups (32).
        md_s, md_r, train_steps, eval_steps, inv_t, rand_init: :class:`NMF2D` settings
            (MMSeg's ``ham_kwargs``: ``MD_S``, ``MD_R``, ...; its NMF fixes ``inv_t`` to 1).

    Output: ``(N, channels, H / in_strides[in_index[0]], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 256,
        ham_channels: int = 256,
        in_index: Sequence[int] = (1, 2, 3),
        num_groups: int = 32,
        md_s: int = 1,
        md_r: int = 16,
        train_steps: int = 6,
        eval_steps: int = 7,
        inv_t: float = 1.0,
        rand_init: bool = True,
    ) -> None:
        super().__init__()
        self.in_index = list(in_index)
        self.channels = channels
        self.output_stride = in_strides[self.in_index[0]]
        c_in = sum(in_channels[i] for i in self.in_index)
        self.squeeze = ConvGNAct(c_in, ham_channels, 1, num_groups)
        self.hamburger = Hamburger(
            ham_channels,
            num_groups,
            md_s=md_s,
            md_r=md_r,
            train_steps=train_steps,
            eval_steps=eval_steps,
            inv_t=inv_t,
            rand_init=rand_init,
        )
        self.align = ConvGNAct(ham_channels, channels, 1, num_groups)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        inputs = [features[i] for i in self.in_index]
        size = inputs[0].shape[2:]
        x = torch.cat(
            [
                t
                if t.shape[2:] == size
                else F.interpolate(t, size, mode="bilinear", align_corners=False)
                for t in inputs
            ],
            dim=1,
        )
        return self.align(self.hamburger(self.squeeze(x)))
