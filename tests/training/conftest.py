import numpy as np
import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """300 records of scikit-learn's 8x8 digits, flattened and scaled to [0, 1]."""
    d = load_digits()
    return (d.data[:300] / 16.0).astype(np.float32), d.target[:300].astype(np.int64)


@pytest.fixture(scope="session")
def masks() -> np.ndarray:
    """Four models, each on a random half of the 300 records."""
    return np.random.default_rng(0).random((4, 300)) < 0.5
