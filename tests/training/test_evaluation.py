import numpy as np
import pytest
import tensorflow as tf

import keras_metacleaner as kmc
from keras_metacleaner.training import evaluation


def test_evaluate_classifier_counts():
    probs = np.array(
        [[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3]], "float32"
    )
    labels = np.array([0, 2, 2, 0], "int32")
    ds = tf.data.Dataset.from_tensor_slices((np.arange(4, dtype="float32")[:, None], labels))
    report = evaluation.evaluate_classifier(
        lambda x: probs[x[:, 0].astype(int)], ds, 3, batch_size=3
    )
    assert report["top1"] == pytest.approx(0.5)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 0, 0], [0, 1, 1]]
    assert report["per_class_accuracy"] == [0.5, None, 0.5]
    assert report["top_k"] == 3 and report["top5"] == 1.0


def test_wrong_number_of_classes_is_named():
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((2, 1), "float32"), [0, 1]))
    with pytest.raises(ValueError, match="predicts 2 classes but the dataset has 3"):
        evaluation.evaluate_classifier(lambda x: np.ones((len(x), 2)), ds, 3)


def test_load_classifier_from_keras_file_and_savedmodel(tmp_path):
    model = kmc.MetaCleanerModel(
        kmc.models.small_cnn((8, 8, 1), feature_dim=8), num_classes=3, subset_size=2
    )
    path = str(tmp_path / "model.keras")
    model.save(path)
    images = np.random.default_rng(0).uniform(0, 255, (5, 8, 8, 1)).astype("float32")
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(evaluation.load_classifier(path)(images), expected, atol=1e-5)

    export_path = kmc.export.export_for_serving(
        model, str(tmp_path / "export"), class_names=["a", "b", "c"]
    )
    np.testing.assert_allclose(evaluation.load_classifier(export_path)(images), expected, atol=1e-5)

    with pytest.raises(ValueError, match="expected a .keras file or a SavedModel"):
        evaluation.load_classifier(str(tmp_path))


def test_confusion_png(tmp_path):
    path = evaluation.save_confusion_png(
        [[3, 1], [0, 4]], ["a", "b"], str(tmp_path / "cm.png"), "t"
    )
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png"]
