"""Randomized smoothing (Cohen, Rosenfeld, Kolter, ICML 2019): certify the smoothed classifier
``g(x) = argmax_c P(f(x + N(0, σ²I)) = c)`` of any base classifier ``f``.

CERTIFY as in the paper: ``n0`` noisy samples pick the candidate class ``ĉ``; ``n`` fresh samples
(never the same ones: reusing the selection samples would bias the estimate) count how often
``f`` says ``ĉ``; the one-sided Clopper–Pearson lower bound ``p_A`` at level ``1 − α`` is
``Beta(α; k, n − k + 1)``. Below 1/2 the record abstains; otherwise ``g`` is constant — and
equal to ``ĉ`` — on the L2 ball of radius ``σ·Φ⁻¹(p_A)``, with probability at least ``1 − α``
over the sampling. The model is only called, so any callable works: scores ``(m, C)`` or labels
``(m,)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from unmeasured.errors import ConfigError, TargetError

#: the prediction of a record on which the smoothed classifier abstains
ABSTAIN = -1


@dataclass(frozen=True)
class SmoothingCertificate:
    """Per-record result of `smoothing_certify`.

    Attributes:
        prediction: ``(n,)`` the smoothed classifier's class, or `ABSTAIN`.
        p_lower: ``(n,)`` the Clopper–Pearson lower bound on the top class's probability.
        radius: ``(n,)`` the certified L2 radius, ``σ·Φ⁻¹(p_lower)``; 0 where abstaining.
        counts: ``(n, C)`` the estimation samples' votes.
        sigma, alpha, n0, n: the parameters, reported with the result.
    """

    prediction: torch.Tensor
    p_lower: torch.Tensor
    radius: torch.Tensor
    counts: torch.Tensor
    sigma: float
    alpha: float
    n0: int
    n: int


def smoothing_certify(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    sigma: float,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    num_classes: int | None = None,
    batch_size: int = 1_000,
    seed: int = 0,
) -> SmoothingCertificate:
    """Certify the Gaussian-smoothed ``model`` at each record of ``x``.

    Args:
        model: maps a batch ``(m, ...)`` to scores ``(m, C)`` (argmax taken) or labels ``(m,)``.
        x: the records ``(r, ...)``, on the device the model expects.
        sigma: the noise's standard deviation, > 0.
        n0: selection samples per record (Cohen et al.: 100).
        n: estimation samples per record (Cohen et al.: 100,000).
        alpha: the probability that a certificate is wrong, in (0, 1) (Cohen et al.: 0.001).
        num_classes: needed when the model returns labels; read off scores otherwise.
        batch_size: noisy copies sent to the model per call.
        seed: seeds the noise; the same seed gives the same certificates, whatever the
            batch size.

    Returns:
        A `SmoothingCertificate`.

    Raises:
        ConfigError: a parameter out of range.
        TargetError: the model's output is neither scores nor labels of the batch's length.

    Example:
        >>> constant = lambda z: torch.zeros(len(z), 3)
        >>> smoothing_certify(constant, torch.zeros(1, 2), sigma=0.5, n=1000).prediction
        tensor([0])
    """
    if not sigma > 0:
        raise ConfigError(f"sigma: must be > 0, got {sigma}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha: must be in (0, 1), got {alpha}")
    if n0 < 1 or n < 1 or batch_size < 1:
        raise ConfigError(f"n0, n and batch_size: must be ≥ 1, got {n0}, {n} and {batch_size}")
    predictions, lowers, all_counts = [], [], []
    for index, record in enumerate(x):
        noise = _Noise(record, sigma, (seed, index, 0))
        selection = _votes(model, noise, n0, batch_size, num_classes)
        candidate = int(selection.argmax())
        counts = _votes(
            model, _Noise(record, sigma, (seed, index, 1)), n, batch_size, len(selection)
        )
        hits = int(counts[candidate])
        lower = float(stats.beta.ppf(alpha, hits, n - hits + 1)) if hits else 0.0
        predictions.append(candidate if lower >= 0.5 else ABSTAIN)
        lowers.append(lower)
        all_counts.append(counts)
    p_lower = torch.tensor(lowers, dtype=torch.float64)
    prediction = torch.tensor(predictions, dtype=torch.long)
    radius = torch.where(
        prediction != ABSTAIN,
        sigma * torch.as_tensor(stats.norm.ppf(p_lower.numpy()), dtype=torch.float64),
        torch.zeros_like(p_lower),
    )
    return SmoothingCertificate(
        prediction=prediction,
        p_lower=p_lower,
        radius=radius,
        counts=torch.stack(all_counts),
        sigma=float(sigma),
        alpha=float(alpha),
        n0=int(n0),
        n=int(n),
    )


class _Noise:
    """Noisy copies of one record, numbered: copy ``i`` is the same whatever the batches it is
    drawn in, because each block of `CHUNK` copies has its own generator seeded from
    ``(seed, record, phase, block)``; results then depend on the seed alone, not on the batch
    size."""

    CHUNK = 256

    def __init__(self, record: torch.Tensor, sigma: float, key: tuple[int, int, int]) -> None:
        self.record, self.sigma, self.key = record, sigma, key

    def copies(self, start: int, stop: int) -> torch.Tensor:
        blocks = []
        for block in range(start // self.CHUNK, (stop - 1) // self.CHUNK + 1):
            seed = int(np.random.SeedSequence([*self.key, block]).generate_state(1)[0])
            generator = torch.Generator(device=self.record.device).manual_seed(seed)
            blocks.append(
                torch.randn(
                    (self.CHUNK, *self.record.shape),
                    generator=generator,
                    device=self.record.device,
                    dtype=self.record.dtype,
                )
            )
        offset = (start // self.CHUNK) * self.CHUNK
        noise = torch.cat(blocks)[start - offset : stop - offset]
        return self.record + self.sigma * noise


def _votes(
    model: Callable[[torch.Tensor], torch.Tensor],
    noise: _Noise,
    samples: int,
    batch_size: int,
    num_classes: int | None,
) -> torch.Tensor:
    """How often the model gives each class on ``samples`` noisy copies of the record."""
    batches = []
    classes = num_classes
    for start in range(0, samples, batch_size):
        size = min(batch_size, samples - start)
        with torch.no_grad():
            output = model(noise.copies(start, start + size))
        batches.append(_labels(output, size).cpu())
        classes = classes if classes is not None else _classes(output)
    labels = torch.cat(batches)
    if int(labels.min()) < 0 or int(labels.max()) >= int(classes or 0):
        raise TargetError(
            f"model: returned classes in [{int(labels.min())}, {int(labels.max())}], "
            f"outside [0, {classes})"
        )
    return torch.bincount(labels, minlength=int(classes or 0))


def _labels(output: torch.Tensor, size: int) -> torch.Tensor:
    if output.dim() == 2 and len(output) == size:
        return output.argmax(dim=1)
    if output.dim() == 1 and len(output) == size and not output.is_floating_point():
        return output.long()
    raise TargetError(
        f"model: expected scores ({size}, C) or integer labels ({size},), got shape "
        f"{tuple(output.shape)} of {output.dtype}"
    )


def _classes(output: torch.Tensor) -> int:
    if output.dim() == 2:
        return int(output.shape[1])
    raise ConfigError("num_classes: required when the model returns labels")
