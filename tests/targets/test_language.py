"""Language-model targets: a tiny random-init GPT-2 with a character tokenizer, saved in the test
and read back from its directory (never downloaded), and the plain torch adapter."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest
import torch

from unmeasured.api import audit_config
from unmeasured.config import load_config
from unmeasured.errors import ConfigError, TargetError
from unmeasured.targets import load_target
from unmeasured.targets.language import LN2, TorchLanguageModel, TransformersLanguageModel

CHARS = "\n" + string.ascii_lowercase + string.digits + " "


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, decoders, models
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("gpt2")
    tokenizer = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(CHARS)}, merges=[]))
    tokenizer.decoder = decoders.Fuse()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="\n").save_pretrained(path)
    config = GPT2Config(
        vocab_size=len(CHARS), n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=0
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(path)
    return path


def test_reads_a_local_directory_and_scores_sequences_in_batches(gpt2_dir: Path) -> None:
    lm = load_target(kind="transformers", path=gpt2_dir.name, base_dir=gpt2_dir.parent)
    assert isinstance(lm, TransformersLanguageModel)
    assert lm.capabilities == {"sequences"} and lm.vocabulary_size == len(CHARS)
    assert lm.decode(lm.encode("my pin 12")) == "my pin 12"
    assert lm.symbol_ids("0123456789") == [CHARS.index(c) for c in "0123456789"]
    texts = ["my pin 1234", "my pin 99", "my pin 5"]
    batched = lm.log_perplexity(texts, prefix="my pin ")
    # by hand: -sum log2 p(token | everything before it) over the tokens after the prefix
    for text, value in zip(texts, batched, strict=True):
        ids = torch.tensor([[0, *lm.encode(text)]])
        logp = torch.log_softmax(lm.module(input_ids=ids).logits[0].double(), -1)
        start = 1 + len("my pin ")
        bits = -sum(logp[t - 1, ids[0, t]].item() for t in range(start, ids.shape[1])) / LN2
        assert value == pytest.approx(bits, rel=1e-5)
    assert lm.files and all(f.parent == gpt2_dir for f in lm.files)


def test_a_bad_directory_is_one_line_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"target\.path: .*not a directory"):
        load_target(kind="transformers", path="absent", base_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TargetError, match=r"target\.path: empty: no tokenizer"):
        load_target(kind="transformers", path="empty", base_dir=tmp_path)
    with pytest.raises(TargetError, match=r"target\.weights: not used by kind 'transformers'"):
        load_target(kind="transformers", path="empty", weights="w.pt", base_dir=tmp_path)


def test_config_runs_canary_audits_on_a_transformers_directory(gpt2_dir: Path) -> None:
    config = gpt2_dir.parent / "lm.toml"
    config.write_text(
        f"""
[target]
kind = "transformers"
path = "{gpt2_dir.name}"
[data]
[[audits]]
name = "memorization.exposure"
canaries = ["my pin code is 1234"]
[[audits]]
name = "memorization.extraction"
prefixes = ["my pin code is "]
beam_widths = [1, 8]
"""
    )
    run = audit_config(load_config(config))
    exposure, extraction = run.audits
    assert exposure.status == "ok" and extraction.status == "ok"
    # a random-init model: the canary is an ordinary candidate (measured 0.9 bits of 13.3)
    assert exposure.metrics["exposure_max"].value < 6
    assert len(extraction.details["completions"][0]["completions"]) == 5
    assert run.target is not None and run.target.kind == "language model"
    assert run.target.accuracy == {} and run.target.files


def test_classifier_audits_are_refused_at_preflight(gpt2_dir: Path) -> None:
    config = gpt2_dir.parent / "refused.toml"
    config.write_text(
        f'[target]\nkind = "transformers"\npath = "{gpt2_dir.name}"\n[data]\n'
        '[[audits]]\nname = "robustness.fgsm"\n'
    )
    with pytest.raises(ConfigError, match="needs a target that gives .*gives sequences"):
        audit_config(load_config(config))


def test_torch_module_shape_is_checked() -> None:
    lm = TorchLanguageModel(torch.nn.Embedding(3, 3), "abc")  # (b, t) -> (b, t, 3): fits
    assert lm.next_token_log_probs(np.array([[0, 1]])).shape == (1, 3)
    flat = torch.nn.Sequential(torch.nn.Embedding(3, 3), torch.nn.Flatten())  # (b, t * 3)
    bad = TorchLanguageModel(flat, "abc")
    with pytest.raises(TargetError, match=r"expected \(batch, time, 3\)"):
        bad.next_token_log_probs(np.array([[0, 1]]))
