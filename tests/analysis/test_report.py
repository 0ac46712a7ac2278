"""The CSV of label issues, gathering images by index, and the contact sheet, on tiny data."""

import csv

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_metacleaner.analysis import (
    CSV_COLUMNS,
    LabelScores,
    contact_sheet,
    gather_images,
    write_label_issues_csv,
)

NAMES = ["cat", "dog", "bird"]


def _scores(alpha=(0.9, np.nan, 0.1)):
    return LabelScores(
        given_label=np.array([0, 1, 2], np.int32),
        alpha=np.array(alpha, float),
        label_probability=np.array([0.8, 0.5, 0.1]),
        predicted_label=np.array([0, 1, 0], np.int32),
        predicted_probability=np.array([0.8, 0.5, 0.7]),
        other_probability=np.array([0.1, 0.3, 0.7]),
        suspicion=np.array([0.15, 0.4, 0.8]),
    )


def test_csv_columns_and_order(tmp_path):
    path = write_label_issues_csv(str(tmp_path / "sub" / "issues.csv"), _scores(), NAMES)
    with open(path) as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == [c for c in CSV_COLUMNS if c != "path"]
    assert [r["index"] for r in rows] == ["2", "1", "0"]  # most suspicious first
    assert rows[0] == {
        "index": "2",
        "given_label": "2",
        "given_class": "bird",
        "predicted_label": "0",
        "predicted_class": "cat",
        "alpha_score": "0.100000",
        "label_probability": "0.100000",
        "suspicion": "0.800000",
    }
    assert rows[1]["alpha_score"] == ""  # no α: empty, not "nan"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["issues.csv"]  # no temp file left


def test_csv_path_column_for_file_sources(tmp_path):
    files = ["a.jpg", "b.jpg", "c.jpg"]
    path = write_label_issues_csv(str(tmp_path / "i.csv"), _scores(), NAMES, paths=files)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [(r["index"], r["path"]) for r in rows] == [
        ("2", "c.jpg"),
        ("1", "b.jpg"),
        ("0", "a.jpg"),
    ]
    with pytest.raises(ValueError, match="`paths` has 2 entries for 3"):
        write_label_issues_csv(str(tmp_path / "j.csv"), _scores(), NAMES, paths=files[:2])


def test_gather_images_in_the_order_asked():
    images = np.arange(6, dtype="float32").reshape(6, 1, 1, 1)
    pairs = tf.data.Dataset.from_tensor_slices((images, np.zeros(6, "int32")))
    assert gather_images(pairs, [4, 0, 4]).ravel().tolist() == [4.0, 0.0, 4.0]
    with pytest.raises(ValueError, match="no element 9"):
        gather_images(pairs, [1, 9])


def test_contact_sheet_draws_one_tile_per_image(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (5, 8, 8, 1)).astype("float32")
    path = contact_sheet(
        images,
        [0, 1, 2, 0, 1],
        [0, 0, 2, 1, 1],
        NAMES,
        str(tmp_path / "out" / "sheet.png"),
        captions=[f"#{i}" for i in range(5)],
        columns=3,
        cell_size=32,
    )
    with Image.open(path) as sheet:
        assert sheet.format == "PNG"
        width, height = sheet.size
        pixels = np.asarray(sheet.convert("RGB"))
    assert width == 3 * (32 + 4) + 4  # 3 columns
    assert height > 2 * 32  # 2 rows with captions
    # The first tile is the first image, scaled up 4x (nearest neighbour), grey in RGB.
    tile = pixels[4 : 4 + 32, 4 : 4 + 32, 0]
    np.testing.assert_array_equal(tile[::4, ::4], images[0, :, :, 0].astype("uint8"))
    # Red captions where the given class differs from the predicted one (image 1, 3).
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert red.any()
    colour = contact_sheet(
        rng.uniform(0, 1, (2, 6, 6, 3)), [0, 1], [0, 1], NAMES, str(tmp_path / "rgb.png")
    )
    with Image.open(colour) as sheet:
        assert sheet.mode == "RGB"


def test_contact_sheet_bad_input(tmp_path):
    out = str(tmp_path / "s.png")
    with pytest.raises(ValueError, match="2 images, 1 given and 2 predicted"):
        contact_sheet(np.zeros((2, 4, 4, 1)), [0], [0, 1], NAMES, out)
    with pytest.raises(ValueError, match="`given` labels must be in \\[0, 3\\)"):
        contact_sheet(np.zeros((1, 4, 4, 1)), [5], [0], NAMES, out)
    with pytest.raises(ValueError, match="must be \\[K, H, W, C\\]"):
        contact_sheet(np.zeros((4, 4, 1)), [0], [0], NAMES, out)
    assert not (tmp_path / "s.png").exists()
