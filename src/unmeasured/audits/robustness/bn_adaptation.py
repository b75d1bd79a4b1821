"""Test-time adaptation of batch-norm statistics (Schneider et al., NeurIPS 2020, "Improving
robustness against common corruptions by covariate shift adaptation").

A network with BatchNorm normalises every layer with the mean and variance it saw in training.
Under a covariate shift (a corruption, a new camera) those statistics are wrong; re-estimating
them on a batch of shifted inputs, without touching any weight, recovers much of the accuracy.
Schneider et al. mix the two: with ``N`` the prior strength (a pseudo sample size for the
training statistics) and ``n`` the number of shifted inputs,

    mean = N/(N+n) · mean_train + n/(N+n) · mean_shifted      (the same for the variance).

``N = 0`` replaces the statistics outright; a large ``N`` keeps the training ones.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from unmeasured.errors import ConfigError, DataError, TargetError


def batchnorm_layers(module: nn.Module) -> list[_BatchNorm]:
    """The batch-norm layers of ``module`` that keep running statistics (the others always
    normalise with the statistics of the batch at hand, and need no adaptation)."""
    return [
        layer
        for layer in module.modules()
        if isinstance(layer, _BatchNorm)
        and layer.track_running_stats
        and layer.running_mean is not None
    ]


def _running_stats(layer: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """A layer's running mean and variance (`batchnorm_layers` keeps only layers that have them)."""
    if layer.running_mean is None or layer.running_var is None:
        raise RuntimeError(f"{layer!r} keeps no running statistics")
    return layer.running_mean, layer.running_var


def adapt_batchnorm(
    module: nn.Module, x: torch.Tensor, *, prior_strength: float = 0.0
) -> nn.Module:
    """A copy of ``module`` whose batch-norm statistics are re-estimated on ``x``.

    The statistics of every layer come from one forward pass of the whole batch in training
    mode, so each layer sees its inputs normalised by the already adapted layers before it, as in
    Schneider et al. The original module is never modified.

    Args:
        module: a torch module with at least one BatchNorm layer (any of 1d, 2d, 3d).
        x: the shifted inputs, on the module's device; ``n = len(x)`` records (images, not
            pixels, count towards ``n``, as in the paper).
        prior_strength: ``N``, the weight of the training statistics in pseudo-records:
            0 replaces them (full adaptation); Schneider et al. found N between 8 and 32 best
            for small target batches.

    Returns:
        The adapted copy, in eval mode where the original was, ready for inference.

    Raises:
        ConfigError: when ``prior_strength`` is negative.
        DataError: when ``x`` is empty.
        TargetError: when ``module`` has no BatchNorm layer with running statistics.

    Example:
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).eval()
        >>> adapted = adapt_batchnorm(net, torch.randn(64, 3) + 5)
        >>> bool(torch.equal(net[1].running_mean, torch.zeros(4)))
        True
    """
    if not prior_strength >= 0:
        raise ConfigError(f"prior_strength: must be >= 0; got {prior_strength}")
    if len(x) == 0:
        raise DataError("x: need at least one record to estimate batch-norm statistics")
    adapted = copy.deepcopy(module)
    layers = batchnorm_layers(adapted)
    if not layers:
        raise TargetError("module: has no BatchNorm layer with running statistics to adapt")
    prior = {id(layer): tuple(s.clone() for s in _running_stats(layer)) for layer in layers}
    settings = {id(layer): (layer.momentum, layer.training) for layer in layers}
    for layer in layers:
        # momentum 1: the running statistics become exactly those of the one batch
        layer.reset_running_stats()
        layer.momentum = 1.0
        layer.train()
    with torch.no_grad():
        adapted(x)
    keep = prior_strength / (prior_strength + len(x))
    for layer in layers:
        mean, var = prior[id(layer)]
        running_mean, running_var = _running_stats(layer)
        running_mean.mul_(1 - keep).add_(keep * mean)
        running_var.mul_(1 - keep).add_(keep * var)
        layer.momentum, training = settings[id(layer)]
        layer.train(training)
    return adapted
