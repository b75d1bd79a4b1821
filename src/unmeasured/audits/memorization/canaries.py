"""Canaries and their exposure (the Secret Sharer, Carlini et al. 2019), as pure functions.

A canary format is a prefix, an alphabet and a length (``"my pin code is "`` + 4 digits); its
candidates are every secret of that length over the alphabet, ``|R| = |alphabet|^length``. A
model's log-perplexity of a candidate (bits, over the secret's tokens after the prefix) ranks it
among the others, and the exposure of a canary is ``log2 |R| - log2 rank``.

* `enumerate_log_perplexities`: every candidate's log-perplexity, exactly. With a vocabulary in
  which each symbol is one token (character models) the candidates are scored as a trie: the
  next-token log-probabilities after every secret prefix of length ``k`` are computed once, in
  batches, so ``|R| = 10^6`` costs ``1 + A + ... + A^(L-1)`` contexts rather than ``10^6``
  sequences (and a transformers model runs the shared prefix once, its key-value cache reused
  for every context: `LanguageModel.continuation_log_probs`); otherwise every candidate is
  scored as a whole sequence.
* `extrapolated_exposure`: for a space too large to enumerate, a skew-normal
  (`scipy.stats.skewnorm`) fitted to the log-perplexities of a random sample of candidates, and
  ``exposure = -log2 CDF(canary's log-perplexity)``.
* `beam_search`: the most likely secrets after a prefix over the alphabet (greedy is width 1).
* `label_tuple_rank`: the classifier form. A secret is a tuple of ``s`` labels, one for each of
  ``s`` canary inputs, among the ``C^s`` tuples; its log-perplexity is the sum over the inputs
  of ``-log2 p(label | input)``. The sum is separable, so the rank is exact without scoring
  ``C^s`` tuples one by one: the sums of the first ``s // 2`` positions against the sorted sums
  of the rest (``2 C^(s/2)`` sums and a binary search each), which takes ``C^s = 10^12`` in
  about a second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from unmeasured.errors import ConfigError
from unmeasured.targets.language import LN2, LanguageModel


@dataclass(frozen=True)
class CanaryFormat:
    """A secret's format: ``prefix`` then ``length`` symbols of ``alphabet``.

    Example:
        >>> f = CanaryFormat("pin ", "0123456789", 3)
        >>> f.size, f.secret(42), f.index("042"), f.text("042")
        (1000, '042', 42, 'pin 042')
    """

    prefix: str
    alphabet: str
    length: int

    @property
    def size(self) -> int:
        """``|R|``: the number of candidates."""
        return len(self.alphabet) ** self.length

    def secret(self, index: int) -> str:
        """The secret of an index (the alphabet as digits, most significant first)."""
        base = len(self.alphabet)
        symbols = []
        for _ in range(self.length):
            index, digit = divmod(index, base)
            symbols.append(self.alphabet[digit])
        return "".join(reversed(symbols))

    def index(self, secret: str) -> int:
        """The index of a secret (inverse of `secret`)."""
        base = len(self.alphabet)
        value = 0
        for symbol in secret:
            value = value * base + self.alphabet.index(symbol)
        return value

    def text(self, secret: str) -> str:
        return self.prefix + secret

    def check(self, text: str, field: str) -> str:
        """The secret of a full canary text, or a `ConfigError` naming ``field``."""
        secret = text[len(self.prefix) :]
        if (
            not text.startswith(self.prefix)
            or len(secret) != self.length
            or any(c not in self.alphabet for c in secret)
        ):
            raise ConfigError(
                f"{field}: {text!r} is not the prefix {self.prefix!r} followed by "
                f"{self.length} symbols of {self.alphabet!r}"
            )
        return secret

    def sample(
        self, rng: np.random.Generator, n: int, *, exclude: Sequence[int] = ()
    ) -> np.ndarray:
        """``n`` distinct random candidate indices, none of them in ``exclude``."""
        n = min(n, self.size - len(set(exclude)))
        if self.size <= 4 * (n + len(exclude)):
            pool = np.setdiff1d(np.arange(self.size), np.asarray(exclude, dtype=np.int64))
            return np.sort(rng.choice(pool, n, replace=False))
        chosen: set[int] = set()
        excluded = set(int(e) for e in exclude)
        while len(chosen) < n:
            for v in rng.integers(0, self.size, size=2 * (n - len(chosen))).tolist():
                if v not in excluded and len(chosen) < n:
                    chosen.add(v)
        return np.array(sorted(chosen), dtype=np.int64)


def enumerate_log_perplexities(
    model: LanguageModel, fmt: CanaryFormat, *, batch_size: int = 4096
) -> np.ndarray:
    """Every candidate's log-perplexity (bits) given the prefix, in index order.

    Returns:
        float64 ``(|R|,)``.
    """
    symbol_ids = model.symbol_ids(fmt.alphabet)
    if symbol_ids is None:
        indices = np.arange(fmt.size)
        return score_secrets(model, fmt, indices, batch_size=batch_size)
    prefix = np.asarray(model.encode(fmt.prefix), dtype=np.int64)
    symbols = np.asarray(symbol_ids, dtype=np.int64)
    base = len(symbols)
    totals = np.zeros(1, dtype=np.float64)  # bits of the secret prefixes of length k
    digits = np.zeros((1, 0), dtype=np.int64)
    for _ in range(fmt.length):
        next_bits = np.empty((len(digits), base), dtype=np.float64)
        for s in range(0, len(digits), batch_size):
            part = symbols[digits[s : s + batch_size]]
            logp = model.continuation_log_probs(prefix, part)
            next_bits[s : s + len(part)] = -logp[:, symbols] / LN2
        totals = (totals[:, None] + next_bits).reshape(-1)
        digits = np.concatenate(
            [np.repeat(digits, base, axis=0), np.tile(np.arange(base), len(digits))[:, None]],
            axis=1,
        )
    return totals


def score_secrets(
    model: LanguageModel, fmt: CanaryFormat, indices: np.ndarray, *, batch_size: int = 4096
) -> np.ndarray:
    """Log-perplexities (bits) of the candidates at ``indices``, scored as whole sequences."""
    out = np.empty(len(indices), dtype=np.float64)
    for s in range(0, len(indices), batch_size):
        texts = [fmt.text(fmt.secret(int(i))) for i in indices[s : s + batch_size]]
        out[s : s + len(texts)] = model.log_perplexity(texts, prefix=fmt.prefix)
    return out


def rank_among(candidates: np.ndarray, value: float) -> int:
    """1 + the number of candidates strictly more likely (lower log-perplexity) than ``value``
    (the canary itself is one of the candidates)."""
    return int(np.sum(np.asarray(candidates) < value)) + 1


def exact_exposure(space_size: int, rank: int) -> float:
    """``log2 |R| - log2 rank``."""
    return math.log2(space_size) - math.log2(rank)


@dataclass(frozen=True)
class SkewNormalFit:
    """A skew-normal fitted to candidates' log-perplexities (``scipy.stats.skewnorm``)."""

    shape: float
    loc: float
    scale: float
    n: int

    @classmethod
    def fit(cls, log_perplexities: np.ndarray) -> SkewNormalFit:
        values = np.asarray(log_perplexities, dtype=np.float64)
        shape, loc, scale = stats.skewnorm.fit(values)
        return cls(float(shape), float(loc), float(scale), len(values))

    def exposure(self, log_perplexity: float, space_size: int | None = None) -> float:
        """``-log2 CDF(log_perplexity)``: the extrapolated exposure of a secret this likely,
        capped at ``log2 space_size`` when the space's size is given (no secret ranks above
        first; a fitted tail thinner than the model's would otherwise promise more)."""
        value = float(-stats.skewnorm.logcdf(log_perplexity, self.shape, self.loc, self.scale))
        value /= LN2
        return value if space_size is None else min(value, math.log2(space_size))


def extrapolated_exposure(
    sample: np.ndarray, log_perplexity: float, space_size: int | None = None
) -> float:
    """Exposure of a secret from a random sample of candidates' log-perplexities (skew-normal),
    at most ``log2 space_size``."""
    return SkewNormalFit.fit(sample).exposure(log_perplexity, space_size)


@dataclass(frozen=True)
class Beam:
    """The secrets a beam search kept, most likely first, with their log-perplexities (bits)."""

    secrets: tuple[str, ...]
    log_perplexities: tuple[float, ...]


def beam_search(model: LanguageModel, prefix: str, alphabet: str, length: int, width: int) -> Beam:
    """The ``width`` most likely secrets of ``length`` symbols of ``alphabet`` after ``prefix``
    that a beam search finds (width 1: greedy decoding).

    Raises:
        ConfigError: the model's vocabulary does not give each symbol its own token.
    """
    symbol_ids = model.symbol_ids(alphabet)
    if symbol_ids is None:
        raise ConfigError(
            f"audits.alphabet: {model.description} does not give each symbol of {alphabet!r} "
            "its own token; beam search over symbols needs a character-level vocabulary"
        )
    symbols = np.asarray(symbol_ids, dtype=np.int64)
    context = np.asarray(model.encode(prefix), dtype=np.int64)
    beams = np.zeros((1, 0), dtype=np.int64)
    bits = np.zeros(1, dtype=np.float64)
    for _ in range(length):
        step = -model.continuation_log_probs(context, symbols[beams])[:, symbols] / LN2
        total = (bits[:, None] + step).reshape(-1)
        keep = np.argsort(total, kind="stable")[:width]
        parents, digits = np.divmod(keep, len(symbols))
        beams = np.concatenate([beams[parents], digits[:, None]], axis=1)
        bits = total[keep]
    secrets = tuple("".join(alphabet[d] for d in row) for row in beams)
    return Beam(secrets, tuple(float(b) for b in bits))


def all_label_sums(bits: np.ndarray) -> np.ndarray:
    """The log-perplexity of every label tuple over ``k`` positions: ``bits`` is ``(k, C)``
    (bits of each label at each position); returns ``(C^k,)`` in index order (the first
    position most significant)."""
    out = np.zeros(1, dtype=np.float64)
    for row in np.asarray(bits, dtype=np.float64):
        out = (out[:, None] + row[None, :]).reshape(-1)
    return out


def label_tuple_rank(bits: np.ndarray, labels: Sequence[int]) -> int:
    """1 + the number of label tuples strictly more likely than ``labels`` (exact).

    Args:
        bits: ``(s, C)``: ``-log2 p(c | x_i)`` of each label ``c`` at each canary input ``x_i``.
        labels: the secret, one label per input.

    Tuples within ``1e-9`` relative of the secret's log-perplexity count as ties (not more
    likely), so rounding never ranks the secret behind itself.
    """
    bits = np.asarray(bits, dtype=np.float64)
    total = float(bits[np.arange(len(bits)), np.asarray(labels)].sum())
    half = len(bits) // 2
    first = all_label_sums(bits[:half])
    second = np.sort(all_label_sums(bits[half:]))
    tolerance = 1e-9 * max(1.0, abs(total))
    return int(np.searchsorted(second, total - tolerance - first, side="left").sum()) + 1


def sample_label_tuples(bits: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Log-perplexities of ``n`` label tuples drawn uniformly (with replacement) from the
    ``C^s`` candidates, for the skew-normal fit."""
    bits = np.asarray(bits, dtype=np.float64)
    s, c = bits.shape
    labels = rng.integers(0, c, size=(n, s))
    return bits[np.arange(s)[None, :], labels].sum(axis=1)
