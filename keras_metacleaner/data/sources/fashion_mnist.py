"""Fashion-MNIST from local files: Debian's package, the keras cache, or keras."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import subprocess

import numpy as np

from keras_metacleaner.data.sources import common

logger = logging.getLogger(__name__)

CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_PACKAGE = "dataset-fashion-mnist"


def read_idx(path: str) -> np.ndarray:
    """Reads a (gzipped) IDX file of unsigned bytes, e.g. MNIST's.

    Args:
        path: `.gz` or raw IDX file.

    Returns:
        uint8 array of the shape stored in the header.

    Example:

    >>> read_idx("t10k-labels-idx1-ubyte.gz").shape  # doctest: +SKIP
    (10000,)
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path!r} is not an IDX file of unsigned bytes (bad magic number).")
    rank = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path!r}: header says shape {shape}, file holds {values.size} values.")
    return values.reshape(shape)


def _debian_directory() -> str | None:
    if shutil.which("dpkg") is None:
        return None
    try:
        listing = subprocess.run(
            ["dpkg", "-L", DEBIAN_PACKAGE], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    for line in listing.splitlines():
        if line.endswith(FILES["x_train"]):
            return os.path.dirname(line)
    return None


def find_directory() -> str | None:
    """The first directory holding all four files: Debian package, then keras cache."""
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    for directory in (_debian_directory(), os.path.join(keras_home, "datasets", "fashion-mnist")):
        if directory and all(os.path.isfile(os.path.join(directory, f)) for f in FILES.values()):
            return directory
    return None


def load_arrays(directory: str | None = None) -> dict[str, np.ndarray]:
    """The four Fashion-MNIST arrays (`x_*` uint8 `[n, 28, 28]`, `y_*` uint8).

    Args:
        directory: folder with the four IDX `.gz` files; by default the
            Debian package's (found with `dpkg -L`), then the keras cache,
            then a keras download.
    """
    if directory is not None:
        common.check_path(directory, "Fashion-MNIST directory", directory=True)
        for name in FILES.values():
            common.check_path(os.path.join(directory, name), "Fashion-MNIST file", directory=False)
    else:
        directory = find_directory()
    if directory is None:
        import keras

        logger.info("Fashion-MNIST not found locally; downloading it with keras.")
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
        return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    logger.info("Reading Fashion-MNIST from %s.", directory)
    return {key: read_idx(os.path.join(directory, name)) for key, name in FILES.items()}


def load(target: str, options: dict, *, image_size=None, seed: int = 0):
    """`fashion_mnist[?dir=DIRECTORY]` -> `LoadedData`."""
    from keras_metacleaner.data.sources import npz

    del target, seed  # no target; nothing is drawn
    options = dict(options)
    arrays = load_arrays(options.pop("dir", None))
    if options:
        raise ValueError(f"Unknown option(s) for fashion_mnist: {sorted(options)}; known: dir.")
    arrays["class_names"] = np.array(CLASS_NAMES)
    return npz.from_arrays(arrays, "fashion_mnist", image_size)
