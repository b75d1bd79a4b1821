import numpy as np
import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits, flattened, scaled to [0, 1] and shuffled."""
    d = load_digits()
    x, y = (d.data / 16).astype(np.float32), d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))
    return x[perm], y[perm]
