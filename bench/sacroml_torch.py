"""The torch model class and training function sacroml's `PytorchModel` imports by path to train
its shadow models: the same architecture and recipe as the benchmark's target
(`MLPRecipe(hidden=(256,), batch_size=128, lr=1e-3, optimizer="adam")`)."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, d_in: int = 784, hidden: int = 256, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train(model: nn.Module, dataloader, epochs: int = 30, lr: float = 1e-3) -> None:  # type: ignore[no-untyped-def]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for xb, yb in dataloader:
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    model.eval()
