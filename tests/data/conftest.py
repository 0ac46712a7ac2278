"""Fixtures for the data tests: tiny image files in the real formats."""

import os

import numpy as np
import pytest
from PIL import Image


def write_image(path, size=(12, 10), mode="RGB", value=None, seed=0):
    """Writes a small JPEG / PNG (by extension); returns the path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    if value is not None:
        pixels[:] = value
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)
    return path


def write_corrupt(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return path


@pytest.fixture
def image_writer():
    return write_image


@pytest.fixture
def corrupt_writer():
    return write_corrupt
