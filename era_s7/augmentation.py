"""The training augmentation: random rotation, translation and elastic distortion of a whole batch in one
`grid_sample` (no PIL, no per-sample Python), drawn from the run's own generator."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .data import MNIST_MEAN, MNIST_STD

BACKGROUND = (0.0 - MNIST_MEAN) / MNIST_STD  # the normalised value of a black pixel


def augment(x: torch.Tensor, rotate_deg: float, translate: float, generator: torch.Generator | None = None,
            elastic: float = 0.0) -> torch.Tensor:
    """Random rotation and translation, and optionally an elastic distortion, drawn per sample and applied
    to the whole batch in one `grid_sample`.

    The elastic field (Simard et al., 2003) is uniform noise on a coarse 4x4 grid of control points, upsampled
    to the image: smooth displacements of up to `elastic` pixels that bend strokes the way pens do.
    Areas moved in from outside the image are black (the normalised background), as in torchvision."""
    if rotate_deg == 0 and translate == 0 and elastic == 0:
        return x
    n, _, h, w = x.shape
    draw = torch.rand(n, 3, generator=generator, device=x.device, dtype=torch.float32) * 2 - 1
    angle = draw[:, 0] * math.radians(rotate_deg)
    shift = draw[:, 1:] * (2 * translate)  # affine_grid coordinates span [-1, 1]: 2 units per image
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    if elastic:
        coarse = torch.rand(n, 2, 4, 4, generator=generator, device=x.device, dtype=torch.float32) * 2 - 1
        field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True).clamp_(-1, 1)
        grid = grid + (field * (2 * elastic / torch.tensor([w, h], device=x.device).view(1, 2, 1, 1))
                       ).permute(0, 2, 3, 1).to(x.dtype)
    return F.grid_sample(x - BACKGROUND, grid, align_corners=False) + BACKGROUND
