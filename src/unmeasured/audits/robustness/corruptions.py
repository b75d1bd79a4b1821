"""Common corruptions at five severities, for images and for tabular records.

Image corruptions follow the types of ImageNet-C (Hendrycks & Dietterich, ICLR 2019): noise
(gaussian, shot, impulse), blur (gaussian, defocus, motion), weather and digital (brightness,
contrast, fog, snow, JPEG, pixelate, elastic). They are written here in torch (JPEG through
Pillow) because the packaged implementation (``imagecorruptions``) does not install on current
NumPy and scikit-image, and because it assumes 3-channel uint8 images of ImageNet size. These work
on batches ``(N, C, H, W)`` of any size and channel count inside an input box, on the batch's
device. Spatial parameters (blur widths, fog scale, displacements) are fractions of the image's
shorter side, so a severity means the same on 8×8 digits and on 224×224 photographs; the
weather effects are procedural stand-ins (a multi-octave noise fog, blurred snow flakes), not
ImageNet-C's exact recipes or its frost photographs.

Every corruption is deterministic given the generator's seed and monotone in severity: the same
seed draws the same noise, and a higher severity scales its effect up.

Tabular corruptions act on ``(N, d)`` features measured against a reference sample (the training
data, or the clean batch): feature noise, a scaling drift of every feature, and values missing
completely at random, imputed with the reference's per-feature mean.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from unmeasured.errors import ConfigError, DataError, one_of

Bounds = tuple[float, float]
SEVERITIES = (1, 2, 3, 4, 5)

# ----------------------------------------------------------------- helpers on [0, 1] images


def _uniform(
    shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor
) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(like)


def _normal(
    shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor
) -> torch.Tensor:
    return torch.randn(shape, generator=generator).to(like)


def _side(u: torch.Tensor) -> int:
    return min(u.shape[-2], u.shape[-1])


def _convolve(u: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve every channel of every image with its image's kernel ``(N, k, k)`` (or one
    shared ``(k, k)``), replicating the border so that any kernel size fits any image."""
    n, c, h, w = u.shape
    if kernels.dim() == 2:
        kernels = kernels.expand(n, *kernels.shape)
    size = kernels.shape[-1]
    per_channel = kernels.repeat_interleave(c, dim=0)[:, None]
    padded = F.pad(u.reshape(1, n * c, h, w), [size // 2] * 4, mode="replicate")
    return F.conv2d(padded, per_channel.to(u), groups=n * c).reshape(n, c, h, w)


def _grid(radius: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    offsets = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    rows, columns = torch.meshgrid(offsets, offsets, indexing="ij")
    return rows, columns


def _gaussian_kernel(sigma: float, like: torch.Tensor) -> torch.Tensor:
    rows, cols = _grid(max(1, math.ceil(3 * sigma)), like)
    kernel = torch.exp(-(rows**2 + cols**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _normalise(u: torch.Tensor) -> torch.Tensor:
    """Rescale each image to [0, 1]."""
    flat = u.reshape(len(u), -1)
    low, high = flat.amin(dim=1), flat.amax(dim=1)
    shape = (-1, *([1] * (u.dim() - 1)))
    return (u - low.reshape(shape)) / (high - low).clamp_min(1e-12).reshape(shape)


# ----------------------------------------------------------------- the image corruptions


def _gaussian_noise(u, sigma, generator):
    return u + sigma * _normal(tuple(u.shape), generator, u)


def _shot_noise(u, photons, generator):
    # photon counts: Poisson with mean proportional to intensity; fewer photons, more noise
    return torch.poisson(u.clamp_min(0).cpu() * photons, generator=generator).to(u) / photons


def _impulse_noise(u, amount, generator):
    draw = _uniform(tuple(u.shape), generator, u)
    salt = _uniform(tuple(u.shape), generator, u) < 0.5
    hit = draw < amount
    return torch.where(hit, salt.to(u), u)


def _gaussian_blur(u, fraction, generator):
    # 0.4 pixel on top, so that the mildest level still blurs a tiny image
    return _convolve(u, _gaussian_kernel(0.4 + fraction * _side(u), u))


def _defocus_blur(u, fraction, generator):
    # a disk of radius r with a one-pixel soft edge, so that small radii still blur a little
    radius = fraction * _side(u)
    rows, cols = _grid(math.ceil(radius) + 1, u)
    kernel = (1 + radius - torch.sqrt(rows**2 + cols**2)).clamp(0, 1)
    return _convolve(u, kernel / kernel.sum())


def _motion_blur(u, fraction, generator):
    # a segment of the given length through the centre, at a random angle per image
    length = fraction * _side(u)
    rows, cols = _grid(math.ceil(length / 2) + 1, u)
    angles = _uniform((len(u),), generator, u) * math.pi
    direction = torch.stack([torch.sin(angles), torch.cos(angles)], dim=1)[:, :, None, None]
    along = (rows * direction[:, 0] + cols * direction[:, 1]).clamp(-length / 2, length / 2)
    off = torch.sqrt((rows - along * direction[:, 0]) ** 2 + (cols - along * direction[:, 1]) ** 2)
    kernels = (1 - off).clamp_min(0)
    return _convolve(u, kernels / kernels.sum(dim=(1, 2), keepdim=True))


def _brightness(u, shift, generator):
    return u + shift


def _contrast(u, factor, generator):
    mean = u.mean(dim=(1, 2, 3), keepdim=True)
    return (u - mean) * factor + mean


def _fractal_noise(n: int, h: int, w: int, decay: float, generator, like) -> torch.Tensor:
    """Multi-octave value noise in [0, 1], ``(n, 1, h, w)``: random grids from 2×2 up to the image
    size, upsampled bilinearly and summed with weights falling by ``decay`` per octave."""
    total = torch.zeros(n, 1, h, w, dtype=like.dtype, device=like.device)
    octaves = max(1, math.ceil(math.log2(max(h, w))))
    for octave in range(octaves):
        cells = 2 ** (octave + 1)
        coarse = _uniform((n, 1, cells, cells), generator, like)
        layer = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
        total += layer / decay**octave
    return _normalise(total)


def _fog(u, strength, generator):
    fog = _fractal_noise(len(u), u.shape[2], u.shape[3], 1.7, generator, u)
    peak = u.amax(dim=(1, 2, 3), keepdim=True)
    return (u + strength * fog) * peak / (peak + strength)


def _snow(u, level, generator):
    # flakes: sparse bright dots smeared by a motion blur; the scene washes out towards white
    density, whiten = level
    flakes = (_uniform((len(u), 1, *u.shape[2:]), generator, u) < density).to(u)
    flakes = _motion_blur(flakes, 0.15, generator) * 3
    luminance = u.mean(dim=1, keepdim=True)
    washed = (1 - whiten) * u + whiten * torch.maximum(u, luminance * 1.5 + 0.5)
    return washed + flakes


def _jpeg(u, quality, generator):
    from PIL import Image

    pixels = (u.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    n, c = pixels.shape[:2]
    # Pillow encodes grey and RGB images; other channel counts are encoded channel by channel
    planes = (
        [pixels[i].transpose(1, 2, 0) for i in range(n)]
        if c == 3
        else [pixels[i, j] for i in range(n) for j in range(c)]
    )
    decoded = []
    for plane in planes:
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(plane)).save(buffer, format="JPEG", quality=quality)
        decoded.append(np.asarray(Image.open(buffer)))
    stacked = np.stack(decoded)
    restored = stacked.transpose(0, 3, 1, 2) if c == 3 else stacked.reshape(pixels.shape)
    return torch.from_numpy(restored.astype(np.float32) / 255).to(u)


def _pixelate(u, level, generator):
    # square blocks of b×b pixels replaced by their mean; b is a fraction of the side, at least
    # severity + 1 pixels (so that severities differ on small images) and at most half the side
    # (beyond that, partial blocks at the edge would keep detail and undo the monotony)
    fraction, floor = level
    block = max(1, min(max(floor, round(fraction * _side(u))), _side(u) // 2))
    h, w = u.shape[2:]
    means = F.avg_pool2d(u, block, stride=block, ceil_mode=True)
    return means.repeat_interleave(block, dim=2).repeat_interleave(block, dim=3)[:, :, :h, :w]


def _elastic(u, fraction, generator):
    # a smooth random displacement field, as large as ``fraction`` of the image at its peak
    n, _, h, w = u.shape
    field = _uniform((n, 2, h, w), generator, u) * 2 - 1
    field = _convolve(field, _gaussian_kernel(max(0.5, 0.1 * _side(u)), u))
    field = field / field.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    base = F.affine_grid(
        torch.eye(2, 3, dtype=u.dtype, device=u.device).expand(n, 2, 3),
        [n, 1, h, w],
        align_corners=False,
    )
    grid = base + 2 * fraction * field.permute(0, 2, 3, 1)
    return F.grid_sample(u, grid, mode="bilinear", padding_mode="border", align_corners=False)


Corruption = Callable[[torch.Tensor, object, torch.Generator | None], torch.Tensor]

#: name → (function on images in [0, 1], its parameter at severities 1..5). Noise, brightness,
#: contrast and JPEG levels are ImageNet-C's; the spatial ones (blur widths, pixelation blocks,
#: elastic displacement) are fractions of the shorter side.
IMAGE_CORRUPTIONS: dict[str, tuple[Corruption, tuple]] = {
    "gaussian_noise": (_gaussian_noise, (0.08, 0.12, 0.18, 0.26, 0.38)),
    "shot_noise": (_shot_noise, (60.0, 25.0, 12.0, 5.0, 3.0)),
    "impulse_noise": (_impulse_noise, (0.03, 0.06, 0.09, 0.17, 0.27)),
    "gaussian_blur": (_gaussian_blur, (0.02, 0.04, 0.06, 0.08, 0.12)),
    "defocus_blur": (_defocus_blur, (0.03, 0.05, 0.08, 0.11, 0.15)),
    "motion_blur": (_motion_blur, (0.1, 0.15, 0.2, 0.3, 0.4)),
    "brightness": (_brightness, (0.1, 0.2, 0.3, 0.4, 0.5)),
    "contrast": (_contrast, (0.4, 0.3, 0.2, 0.1, 0.05)),
    "fog": (_fog, (0.4, 0.7, 1.0, 1.4, 2.0)),
    "snow": (_snow, ((0.02, 0.1), (0.03, 0.2), (0.05, 0.3), (0.07, 0.4), (0.1, 0.5))),
    "jpeg": (_jpeg, (25, 18, 15, 10, 7)),
    "pixelate": (_pixelate, ((0.06, 2), (0.1, 3), (0.14, 4), (0.19, 5), (0.25, 6))),
    "elastic": (_elastic, (0.02, 0.04, 0.06, 0.08, 0.1)),
}


def _check_severity(severity: int) -> int:
    if severity not in SEVERITIES:
        raise ConfigError(f"severity: must be one of 1, 2, 3, 4 or 5; got {severity!r}")
    return severity


def corrupt_images(
    x: torch.Tensor,
    corruption: str,
    severity: int,
    *,
    bounds: Bounds = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A corrupted copy of a batch of images.

    Args:
        x: images ``(N, C, H, W)`` inside ``bounds``, any size and channel count (JPEG encodes
            3-channel images as RGB and any other count channel by channel).
        corruption: one of `IMAGE_CORRUPTIONS`.
        severity: 1 (mild) to 5 (severe).
        bounds: the input box; images are mapped to [0, 1] from it, corrupted, mapped back and
            clipped into it.
        generator: source of the randomness; the same seed gives the same corruption.

    Returns:
        The corrupted batch, same shape, dtype and device as ``x``.

    Raises:
        ConfigError: on an unknown corruption, a severity outside 1..5 or empty bounds.
        DataError: when ``x`` is not a 4-d batch.

    Example:
        >>> x = torch.full((1, 1, 8, 8), 0.5)
        >>> corrupt_images(x, "brightness", 2).max().item()
        0.699999988079071
    """
    if corruption not in IMAGE_CORRUPTIONS:
        raise ConfigError(
            f"corruption: unknown image corruption {corruption!r}; "
            f"choose {one_of(IMAGE_CORRUPTIONS)}"
        )
    _check_severity(severity)
    if x.dim() != 4:
        raise DataError(f"x: image corruptions need a batch (N, C, H, W); got {tuple(x.shape)}")
    low, high = float(bounds[0]), float(bounds[1])
    if not low < high:
        raise ConfigError(f"bounds: low must be below high; got {bounds}")
    function, levels = IMAGE_CORRUPTIONS[corruption]
    unit = ((x - low) / (high - low)).clamp(0, 1)
    corrupted = function(unit, levels[severity - 1], generator).clamp(0, 1)
    return (corrupted * (high - low) + low).to(x.dtype)


# ----------------------------------------------------------------- tabular


def _reference_statistics(
    x: torch.Tensor, reference: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    base = x if reference is None else reference.to(x)
    return base.mean(dim=0), base.std(dim=0).nan_to_num(0.0)


def _feature_noise(x, level, mean, std, generator):
    return x + level * std * _normal(tuple(x.shape), generator, x)


def _scaling_drift(x, level, mean, std, generator):
    # every feature drifts the same way for every record: a random rescale about its mean and
    # a random shift, both growing with severity
    scale = torch.exp(level * _normal((x.shape[1],), generator, x))
    shift = level * std * _normal((x.shape[1],), generator, x)
    return mean + (x - mean) * scale + shift


def _missing_values(x, level, mean, std, generator):
    missing = _uniform(tuple(x.shape), generator, x) < level
    return torch.where(missing, mean.expand_as(x), x)


#: name → (function, its parameter at severities 1..5): noise in reference standard deviations,
#: drift's log-scale and shift spread, fraction of entries missing
TABULAR_CORRUPTIONS: dict[str, tuple[Callable, tuple[float, ...]]] = {
    "feature_noise": (_feature_noise, (0.1, 0.2, 0.35, 0.5, 0.8)),
    "scaling_drift": (_scaling_drift, (0.05, 0.1, 0.2, 0.3, 0.5)),
    "missing_values": (_missing_values, (0.05, 0.1, 0.2, 0.3, 0.5)),
}


def corrupt_tabular(
    x: torch.Tensor,
    corruption: str,
    severity: int,
    *,
    reference: torch.Tensor | None = None,
    bounds: Bounds | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A corrupted copy of a batch of tabular records.

    Args:
        x: records ``(N, d)``.
        corruption: ``"feature_noise"`` (Gaussian noise with each feature's reference standard
            deviation times the level), ``"scaling_drift"`` (each feature rescaled about its
            mean by ``exp(level·z)`` and shifted by ``level·std·z'``, the same for every record)
            or ``"missing_values"`` (entries missing completely at random, imputed with the
            reference's per-feature mean, as a deployed mean imputer would).
        severity: 1 (mild) to 5 (severe).
        reference: the sample the statistics come from (e.g. the training data); default ``x``.
        bounds: an optional input box to clip into.
        generator: source of the randomness; the same seed gives the same corruption.

    Returns:
        The corrupted records, same shape, dtype and device as ``x``.

    Raises:
        ConfigError: on an unknown corruption or a severity outside 1..5.
        DataError: when ``x`` is not ``(N, d)`` or ``reference`` has another width.
    """
    if corruption not in TABULAR_CORRUPTIONS:
        raise ConfigError(
            f"corruption: unknown tabular corruption {corruption!r}; "
            f"choose {one_of(TABULAR_CORRUPTIONS)}"
        )
    _check_severity(severity)
    if x.dim() != 2:
        raise DataError(f"x: tabular corruptions need records (N, d); got {tuple(x.shape)}")
    if reference is not None and (reference.dim() != 2 or reference.shape[1] != x.shape[1]):
        raise DataError(
            f"reference: expected (M, {x.shape[1]}) records; got {tuple(reference.shape)}"
        )
    function, levels = TABULAR_CORRUPTIONS[corruption]
    mean, std = _reference_statistics(x, reference)
    corrupted = function(x, levels[severity - 1], mean, std, generator)
    if bounds is not None:
        corrupted = corrupted.clamp(float(bounds[0]), float(bounds[1]))
    return corrupted.to(x.dtype)
