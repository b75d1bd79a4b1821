"""The robustness section on a real run: attacked and certified accuracy on one plot per norm,
the certificate verdicts, the per-record gap between attacks and certificates, and the
corruption heat-map."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from unmeasured.api import audit
from unmeasured.report import render_html


@pytest.fixture(scope="module")
def digits_mlp_images():  # type: ignore[no-untyped-def]
    digits = load_digits()
    x, y = (digits.data / 16).astype(np.float32).reshape(-1, 1, 8, 8), digits.target
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(150):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(
            net(torch.from_numpy(x[200:])), torch.from_numpy(y[200:])
        )
        loss.backward()
        optimizer.step()
    return net.eval(), x[:200], y[:200]


def test_robustness_section() -> None:
    digits = load_digits()
    x, y = (digits.data / 16).astype(np.float32), digits.target
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.cross_entropy(
            net(torch.from_numpy(x[200:])), torch.from_numpy(y[200:])
        ).backward()
        optimizer.step()
    common = {"epsilons": [0.02, 0.06], "max_records": 30}
    run = audit(
        net.eval(),
        test=(x[:200], y[:200]),
        input_bounds=(0.0, 1.0),
        audits=[
            ("robustness.pgd", {**common, "steps": 10}),
            ("robustness.crown", common),
            ("robustness.corruptions", {"severities": [1, 3, 5], "max_records": 60}),
        ],
    )
    html = render_html(run)
    section = html[html.index('id="family-robustness"') :]
    assert (
        "robustness.pgd[linf] (attacked)" in section
        and "robustness.crown[linf] (certified)" in section
    )
    verdicts = section[section.index('id="certificate-verdicts"') :]
    rows = re.findall(r"<tr><td><code>robustness.crown\[linf\]</code></td>", verdicts)
    assert len(rows) == 2  # one row per epsilon
    gaps = section[section.index('id="robustness-gaps"') :]
    assert len(re.findall(r"<tr><td>L∞</td>", gaps)) == 20
    assert "Accuracy (%) of <code>robustness.corruptions</code>" in section
    assert section.count("<svg") == 2  # the curves of one norm and the heat-map


def test_image_records_show_adversarial_examples(digits_mlp_images) -> None:
    model, x, y = digits_mlp_images
    run = audit(
        model,
        test=(x, y),
        input_bounds=(0.0, 1.0),
        audits=[("robustness.pgd", {"epsilons": [0.1, 0.3], "steps": 10, "max_records": 40})],
    )
    (result,) = run.audits
    assert result.arrays["example_clean"].shape == (4, 1, 8, 8)
    assert (result.arrays["example_label"] != result.arrays["example_predicted"]).all()
    html = render_html(run)
    assert "originals above, adversarial versions below" in html
