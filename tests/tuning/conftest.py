import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory):
    """3 well-separated classes of 8x8 grey images: 150 training, 30 test examples."""
    rng = np.random.default_rng(0)

    def images(labels):
        base = labels[:, None, None, None] * 80.0
        return np.clip(base + rng.normal(0, 20, (len(labels), 8, 8, 1)), 0, 255).astype("uint8")

    y_train = (np.arange(150) % 3).astype("int32")
    y_test = (np.arange(30) % 3).astype("int32")
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x_train=images(y_train), y_train=y_train, x_test=images(y_test), y_test=y_test)
    return str(path)
