"""Exact exposure at ``|R| = 10^6`` on the CPU: the trie enumeration against whole-sequence scoring.

A character GRU (`CharLMRecipe`, the canary tests' recipe: embedding 32, GRU 64, 5 epochs on
Debian's fortunes) is retrained with canaries ``"my pin code is "`` + 6 digits planted 1, 4, 16
and 64 times and two never. Then:

* exact: `enumerate_log_perplexities` scores all 10^6 candidates as a trie (next-digit
  probabilities after every secret prefix: ``1 + 10 + ... + 10^5 = 111,111`` contexts), timed
  with its peak resident memory;
* naive: `score_secrets` scores a random subset of candidates as whole sequences in batches, and
  its time is extrapolated linearly to 10^6 (the subset's scores are checked against the
  enumeration's);
* extrapolated: a skew-normal fitted to 10^3 and to 10^4 candidates drawn from the enumeration,
  and the planted canaries' extrapolated exposure against their exact one.

With ``--gpt2``, the same timings for a tiny random-init GPT-2 (2 layers, width 32, a character
tokenizer) saved to and read back from a local directory (no canaries: its exposures mean
nothing, only its cost does).

One torch thread unless ``--threads`` says otherwise; the load averages before and after every
phase are kept in the JSON (other work on a shared machine only slows a run down).

    .venv/bin/python bench/bench_exposure.py [--digits 6] [--naive 20000] [--gpt2] [--name NAME]
"""

from __future__ import annotations

import argparse
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import RssSampler, load_average, write_result

from unmeasured.audits.memorization.canaries import (
    CanaryFormat,
    SkewNormalFit,
    enumerate_log_perplexities,
    exact_exposure,
    rank_among,
    score_secrets,
)
from unmeasured.targets.language import LanguageModel, TransformersLanguageModel
from unmeasured.training.language import CharLMRecipe

REPETITIONS = (1, 4, 16, 64)
CONTROLS = 2


def timed_enumeration(model: LanguageModel, fmt: CanaryFormat) -> tuple[np.ndarray, dict]:
    before = load_average()
    with RssSampler() as rss:
        start = time.perf_counter()
        everything = enumerate_log_perplexities(model, fmt)
        seconds = time.perf_counter() - start
    return everything, {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(rss.peak_mb, 1),
        "rss_increase_mb": round(rss.peak_mb - rss.baseline_mb, 1),
        "contexts": sum(len(fmt.alphabet) ** k for k in range(fmt.length)),
        "load_average_before": before,
        "load_average_after": load_average(),
    }


def timed_naive(
    model: LanguageModel, fmt: CanaryFormat, everything: np.ndarray, n: int, seed: int
) -> dict:
    indices = np.sort(np.random.default_rng(seed).choice(fmt.size, size=n, replace=False))
    before = load_average()
    with RssSampler() as rss:
        start = time.perf_counter()
        scores = score_secrets(model, fmt, indices, batch_size=4096)
        seconds = time.perf_counter() - start
    return {
        "candidates": n,
        "seconds": round(seconds, 2),
        "extrapolated_seconds_all": round(seconds * fmt.size / n, 1),
        "peak_rss_mb": round(rss.peak_mb, 1),
        "rss_increase_mb": round(rss.peak_mb - rss.baseline_mb, 1),
        "max_abs_difference_bits": float(np.max(np.abs(scores - everything[indices]))),
        "load_average_before": before,
        "load_average_after": load_average(),
    }


def extrapolations(
    fmt: CanaryFormat, everything: np.ndarray, canaries: list[dict[str, Any]], seed: int
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for n in (1_000, 10_000):
        pool = fmt.sample(rng, n, exclude=[c["index"] for c in canaries])
        start = time.perf_counter()
        fit = SkewNormalFit.fit(everything[pool])
        seconds = time.perf_counter() - start
        rows.append(
            {
                "samples": len(pool),
                "fit_seconds": round(seconds, 3),
                "exposures": [round(fit.exposure(c["log_perplexity"]), 2) for c in canaries],
            }
        )
    return rows


def char_gru(args: argparse.Namespace, fmt: CanaryFormat, cache: Path) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    counts = [*REPETITIONS, *([0] * CONTROLS)]
    indices = fmt.sample(rng, len(counts))[rng.permutation(len(counts))]
    planted = [(fmt.text(fmt.secret(int(i))), c) for i, c in zip(indices, counts, strict=True)]
    recipe = CharLMRecipe(epochs=5, hidden=64)
    start = time.perf_counter()
    model = recipe.train(planted, seed=args.seed, cache_dir=cache)
    train_seconds = time.perf_counter() - start
    everything, exact = timed_enumeration(model, fmt)
    canaries = []
    for (text, count), index in zip(planted, indices, strict=True):
        bits = float(everything[index])
        rank = rank_among(everything, bits)
        canaries.append(
            {
                "text": text,
                "index": int(index),
                "repetitions": count,
                "log_perplexity": round(bits, 3),
                "rank": rank,
                "exposure": round(exact_exposure(fmt.size, rank), 2),
            }
        )
    naive = timed_naive(model, fmt, everything, args.naive, args.seed)
    return {
        "model": model.description,
        "parameters": model.parameter_count(),
        "train_seconds": round(train_seconds, 1),
        "exact": exact,
        "naive": naive,
        "canaries": canaries,
        "skew_normal": extrapolations(fmt, everything, canaries, args.seed),
    }


def gpt2(args: argparse.Namespace, fmt: CanaryFormat) -> dict[str, Any]:
    from tokenizers import Tokenizer, decoders, models
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    chars = "\n" + string.ascii_lowercase + string.digits + " "
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gpt2"
        tokenizer = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(chars)}, merges=[]))
        tokenizer.decoder = decoders.Fuse()
        PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="\n").save_pretrained(path)
        config = GPT2Config(
            vocab_size=len(chars), n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=0
        )
        torch.manual_seed(args.seed)
        GPT2LMHeadModel(config).save_pretrained(path)
        model = TransformersLanguageModel(path, batch_size=args.gpt2_batch)
        everything, exact = timed_enumeration(model, fmt)
        naive = timed_naive(model, fmt, everything, args.naive // 4, args.seed)
        return {
            "model": model.description,
            "parameters": model.parameter_count(),
            "batch_size": args.gpt2_batch,
            "exact": exact,
            "naive": naive,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--digits", type=int, default=6)
    parser.add_argument("--naive", type=int, default=20_000, help="candidates scored naively")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpt2", action="store_true", help="also a tiny random-init GPT-2")
    parser.add_argument("--gpt2-batch", type=int, default=512)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bench-cache")
    parser.add_argument("--name", default="exposure_cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fmt = CanaryFormat("my pin code is ", "0123456789", args.digits)
    payload: dict[str, Any] = {
        "format": {"prefix": fmt.prefix, "alphabet": fmt.alphabet, "length": fmt.length},
        "space_size": fmt.size,
        "load_average_before": load_average(),
        "char_gru": char_gru(args, fmt, args.cache),
    }
    print("char GRU", payload["char_gru"]["exact"], payload["char_gru"]["naive"], flush=True)
    if args.gpt2:
        payload["gpt2"] = gpt2(args, fmt)
        print("GPT-2", payload["gpt2"]["exact"], payload["gpt2"]["naive"], flush=True)
    payload["load_average_after"] = load_average()
    path = write_result(args.name, payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
