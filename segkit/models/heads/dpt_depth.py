"""DPT's depth head as Depth Anything uses it (transformers' ``DepthAnythingDepthEstimationHead``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.heads.depth import depth_losses

__all__ = ["DPTDepthHead"]


class DPTDepthHead(nn.Module):
    """Fused DPT features -> one depth channel at the resolution of the padded input.

    A 3x3 conv to ``in_channels // 2``, a bilinear upsampling (``align_corners=True``) from the
    decoded map (``decoder_scale`` times the token grid ``(h, w)``) to ``(h * patch_size,
    w * patch_size)``, then 3x3 conv -> ReLU -> 1x1 conv to one channel and the output
    activation:

    - ``"relative"``: ``ReLU(x) * max_depth`` (``max_depth`` 1): affine-invariant inverse depth
      (disparity-like: larger is nearer, no unit), Depth Anything's released models;
    - ``"metric"``: ``sigmoid(x) * max_depth``: depth in metres in ``(0, max_depth)`` (Depth
      Anything's metric fine-tuning; 10 or 20 indoors, 80 outdoors).

    Args:
        in_channels: channels of the decoded map (the neck's ``fusion_hidden_size``).
        depth_estimation_type: ``"relative"`` or ``"metric"`` (transformers' config option).
        max_depth: output scale (see above).
        hidden_channels: width of the second 3x3 conv (transformers' ``head_hidden_size``).
        patch_size: the encoder's patch size.
        decoder_scale: size of the decoded map over the token grid (8 for DPT's neck).
        losses: depth losses, summed. Default: :class:`~segkit.models.losses.depth.SILogLoss`
            for metric depth, :class:`~segkit.models.losses.affine_invariant.AffineInvariantLoss`
            (on disparity, as Depth Anything trains) for relative depth.
        target_key: the batch entry with the ground truth ``(N, H, W)`` metres, 0 = invalid.

    ``forward(x (N, C, 8h, 8w)) -> (N, 1, 14h, 14w)``; ``postprocess((1, H, W)) -> (H, W)``.
    """

    num_classes = 1  # one output channel

    def __init__(
        self,
        in_channels: int,
        depth_estimation_type: str = "relative",
        max_depth: float = 1.0,
        hidden_channels: int = 32,
        patch_size: int = 14,
        decoder_scale: int = 8,
        losses: list[nn.Module] | None = None,
        target_key: str = "depth",
    ) -> None:
        super().__init__()
        if depth_estimation_type not in ("relative", "metric"):
            raise ValueError(
                f"depth_estimation_type must be 'relative' or 'metric', got {depth_estimation_type!r}"
            )
        self.depth_estimation_type = depth_estimation_type
        self.max_depth = float(max_depth)
        self.patch_size = patch_size
        self.decoder_scale = decoder_scale
        self.conv1 = nn.Conv2d(in_channels, in_channels // 2, 3, padding=1)
        self.conv2 = nn.Conv2d(in_channels // 2, hidden_channels, 3, padding=1)
        self.conv3 = nn.Conv2d(hidden_channels, 1, 1)
        if losses is None:
            if depth_estimation_type == "metric":
                from segkit.models.losses.depth import SILogLoss

                losses = [SILogLoss()]
            else:
                from segkit.models.losses.affine_invariant import AffineInvariantLoss

                losses = [AffineInvariantLoss()]
        self.losses = nn.ModuleList(losses)
        self.target_key = target_key

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[2:]
        size = (
            h // self.decoder_scale * self.patch_size,
            w // self.decoder_scale * self.patch_size,
        )
        x = F.interpolate(self.conv1(x), size=size, mode="bilinear", align_corners=True)
        x = self.conv3(F.relu(self.conv2(x)))
        if self.depth_estimation_type == "metric":
            return torch.sigmoid(x) * self.max_depth
        return F.relu(x) * self.max_depth

    def loss(self, pred: Tensor, batch: dict, prefix: str = "") -> dict[str, Tensor]:
        return depth_losses(pred, batch[self.target_key], self.losses, prefix)

    @staticmethod
    def postprocess(output: Tensor) -> Tensor:
        """``(1, H, W)`` -> ``(H, W)`` float depth (metres, or relative disparity)."""
        return output[0].float()
