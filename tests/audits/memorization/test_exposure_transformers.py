"""The trie enumeration on a transformers model reuses the prefix's key-value cache: a tiny
random-init GPT-2 with a character tokenizer, saved and read back from a local directory.
Measured: every one of the 1,000 candidates agrees with whole-sequence scoring within 1e-5 bits
(largest difference 1.7e-7)."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest
import torch

from unmeasured.audits.memorization.canaries import (
    CanaryFormat,
    beam_search,
    enumerate_log_perplexities,
    score_secrets,
)
from unmeasured.targets.language import LanguageModel, TransformersLanguageModel

CHARS = "\n" + string.ascii_lowercase + string.digits + " "
FORMAT = CanaryFormat("my pin code is ", "0123456789", 3)


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> TransformersLanguageModel:
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    path: Path = tmp_path_factory.mktemp("gpt2-kv")
    tokenizer = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(CHARS)}, merges=[]))
    tokenizer.decoder = decoders.Fuse()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="\n").save_pretrained(path)
    config = GPT2Config(
        vocab_size=len(CHARS), n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=0
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(path)
    return TransformersLanguageModel(path, batch_size=128)


def test_cached_prefix_equals_whole_sequence_scoring(lm: TransformersLanguageModel) -> None:
    everything = enumerate_log_perplexities(lm, FORMAT)
    whole = score_secrets(lm, FORMAT, np.arange(FORMAT.size))
    np.testing.assert_allclose(everything, whole, atol=1e-5)
    # a random-init model still spreads its probability: the candidates are not all alike
    assert everything.std() > 0.1


def test_cached_prefix_equals_the_uncached_next_token_probabilities(
    lm: TransformersLanguageModel,
) -> None:
    context = lm.encode(FORMAT.prefix)
    rows = np.random.default_rng(0).integers(0, lm.vocabulary_size, size=(300, 4))
    cached = lm.continuation_log_probs(context, rows)
    plain = LanguageModel.continuation_log_probs(lm, context, rows)
    np.testing.assert_allclose(cached, plain, atol=1e-5)
    empty = lm.continuation_log_probs(context, np.zeros((2, 0), dtype=np.int64))
    alone = lm.next_token_log_probs(np.array([context]))
    np.testing.assert_allclose(empty, np.repeat(alone, 2, axis=0), atol=1e-12)


def test_beam_search_finds_the_enumerations_best(lm: TransformersLanguageModel) -> None:
    everything = enumerate_log_perplexities(lm, FORMAT)
    beam = beam_search(lm, FORMAT.prefix, FORMAT.alphabet, FORMAT.length, FORMAT.size)
    assert beam.secrets[0] == FORMAT.secret(int(np.argmin(everything)))
    assert beam.log_perplexities[0] == pytest.approx(everything.min(), abs=1e-5)
