"""`memorization.inversion` on planted truth: a model trained on four classes of 8×8 images, one
of which is a fixed random template plus small noise, gives an inversion of that class that
correlates with the template far more than with any other class's records, and far more than
the same class's inversion from the same architecture trained on shuffled labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from unmeasured.api import audit
from unmeasured.audits.memorization.inversion import correlation, invert, total_variation
from unmeasured.errors import InputError
from unmeasured.report import render_html

AUDIT = "memorization.inversion"


@pytest.fixture(scope="module")
def planted() -> dict:
    digits = load_digits()
    x = (digits.data / 16).astype(np.float32).reshape(-1, 1, 8, 8)
    rng = np.random.default_rng(0)
    template = np.where(rng.random((1, 8, 8)) < 0.5, 0.1, 0.9).astype(np.float32)
    copies = np.clip(template + rng.normal(0, 0.05, (150, 1, 8, 8)), 0, 1).astype(np.float32)
    others = np.isin(digits.target, [1, 2, 3])  # digits 1, 2, 3 are classes 1, 2, 3
    records = np.concatenate([copies, x[others]])
    labels = np.concatenate([np.zeros(150, dtype=np.int64), digits.target[others]])
    shuffled = rng.permutation(labels)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        models = {
            name: _train(records, y) for name, y in (("true", labels), ("shuffled", shuffled))
        }
    finally:
        torch.set_num_threads(threads)
    return {
        "template": template,
        "x": records,
        "labels": {"true": labels, "shuffled": shuffled},
        "models": models,
    }


def _train(x: np.ndarray, y: np.ndarray) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        optimizer.step()
    return net.eval()


def _invert(planted: dict, which: str):  # type: ignore[no-untyped-def]
    labels = planted["labels"][which]
    run = audit(
        planted["models"][which],
        members=(planted["x"], labels),
        audits=[AUDIT],
        input_bounds=(0.0, 1.0),
        seed=0,
    )
    (result,) = run.audits
    assert result.status == "ok", result.reason
    return run, result


def test_the_template_class_is_reconstructed(planted: dict) -> None:
    run, result = _invert(planted, "true")
    recon = result.arrays["reconstruction"]
    to_template = correlation(recon, planted["template"][None]).ravel()
    # measured (defaults: 300 Adam steps, λ_TV 0.01, λ_2 0.3): class 0's inversion correlates
    # 0.61 with the template, 0.64 with its nearest class-0 record and -0.20 with the nearest
    # record of another class; the digit classes' inversions do not resemble the template
    # (-0.09, -0.25, -0.07)
    assert to_template[0] > 0.4
    assert to_template[0] > to_template[1:].max() + 0.3
    assert result.arrays["similarity"][0] > result.arrays["other_similarity"][0] + 0.5
    # measured: every class's reconstruction is nearest to a record of its own class (4 of 4,
    # [0.40, 1.00] against the largest class share 0.26), mean similarity 0.68
    m = result.metrics
    assert m["own_class_nearest"].value == 1.0
    assert result.headline is not None and result.headline.concern is True
    assert m["mean_confidence"].value > 0.9  # type: ignore[operator]
    assert result.arrays["nearest"].shape == (4, 1, 8, 8)
    html = render_html(run)
    assert "reconstruction" in html and "nearest training record" in html


def test_a_model_trained_on_shuffled_labels_reconstructs_nothing(planted: dict) -> None:
    _, result = _invert(planted, "shuffled")
    recon = result.arrays["reconstruction"]
    # measured: class 0's inversion correlates -0.09 with the template (0.61 with true labels);
    # the mean similarity margin over other classes' records is -0.012; 1 of 4 classes nearest
    # to their own records
    assert abs(correlation(recon[:1], planted["template"][None])[0, 0]) < 0.3
    assert abs(result.metrics["similarity_margin"].value) < 0.1  # type: ignore[arg-type]
    assert result.headline is not None and result.headline.concern is False


def test_invert_stays_in_bounds_and_is_seeded() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    kwargs = {"steps": 20, "lr": 0.2, "tv_weight": 0.1, "l2_weight": 0.1}
    a = invert(
        net, [0, 2], (1, 4, 4), (-1.0, 2.0), generator=torch.Generator().manual_seed(1), **kwargs
    )
    b = invert(
        net, [0, 2], (1, 4, 4), (-1.0, 2.0), generator=torch.Generator().manual_seed(1), **kwargs
    )
    assert a.shape == (2, 1, 4, 4) and torch.equal(a, b)
    assert a.min() >= -1.0 and a.max() <= 2.0
    # the class's logit went up from the start
    start = torch.zeros(2, 1, 4, 4)
    assert (net(a)[[0, 1], [0, 2]] > net(start)[[0, 1], [0, 2]]).all()
    flat = torch.ones(1, 1, 3, 3)
    assert total_variation(flat).item() == 0.0


def test_correlation_is_pearson() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 1, 5, 5)), rng.normal(size=(4, 25))
    expected = np.corrcoef(a.reshape(3, -1), b)[:3, 3:]
    assert np.allclose(correlation(a, b), expected)


def test_refuses_a_target_without_gradients() -> None:
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    x, y = digits.data[:200] / 16, digits.target[:200]
    with pytest.raises(InputError, match="gradients"):
        audit(LogisticRegression(max_iter=100).fit(x, y), members=(x, y), audits=[AUDIT])
