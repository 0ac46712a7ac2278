"""The serving signatures: agreement with Keras, in-graph decoding and resizing, bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import keras_probabilities

import keras_metacleaner as kmc
from keras_metacleaner.data.sources.fashion_mnist import CLASS_NAMES


def _png(image) -> bytes:
    return tf.io.encode_png(np.asarray(image, np.uint8)).numpy()


def test_three_signatures_with_the_same_outputs(loaded):
    assert sorted(loaded.signatures) == sorted(kmc.export.SIGNATURES)
    for name in kmc.export.SIGNATURES:
        outputs = loaded.signatures[name].structured_outputs
        assert sorted(outputs) == sorted(kmc.export.OUTPUT_KEYS), name
        assert outputs["probabilities"].dtype == tf.float32
        assert outputs["class_id"].dtype == tf.int64
        assert outputs["class_name"].dtype == tf.string


def test_pixels_float32_and_uint8_match_keras(trained_model, loaded, sample_images):
    images, _ = sample_images
    expected = keras_probabilities(trained_model, images)
    as_float = loaded.signatures["serving_default"](images=tf.constant(images, tf.float32))
    as_uint8 = loaded.signatures["serving_uint8"](images=tf.constant(images, tf.uint8))
    for result in (as_float, as_uint8):
        np.testing.assert_allclose(result["probabilities"].numpy(), expected, atol=1e-5)
        ids = result["class_id"].numpy()
        np.testing.assert_array_equal(ids, expected.argmax(-1))
        assert [n.decode() for n in result["class_name"].numpy()] == [CLASS_NAMES[i] for i in ids]


def test_float_pixels_need_not_be_integers(trained_model, loaded):
    """serving_default is the raw float32 path: fractional pixels go through unchanged."""
    images = np.random.default_rng(3).uniform(0, 255, (3, 28, 28, 1)).astype("float32")
    result = loaded.signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(
        result["probabilities"].numpy(), keras_probabilities(trained_model, images), atol=1e-5
    )


def test_png_and_jpeg_bytes_match_keras_on_the_decoded_pixels(trained_model, loaded, sample_images):
    images, _ = sample_images
    pngs = [_png(image) for image in images]
    jpegs = [tf.io.encode_jpeg(image, quality=90).numpy() for image in images]
    from_png = loaded.signatures["serving_bytes"](image_bytes=tf.constant(pngs))
    np.testing.assert_allclose(
        from_png["probabilities"].numpy(), keras_probabilities(trained_model, images), atol=1e-5
    )
    # JPEG is lossy: the reference is Keras on what the JPEG decodes to.
    decoded = np.stack([tf.io.decode_jpeg(j, channels=1).numpy() for j in jpegs])
    assert not np.array_equal(decoded, images)
    from_jpeg = loaded.signatures["serving_bytes"](image_bytes=tf.constant(jpegs))
    np.testing.assert_allclose(
        from_jpeg["probabilities"].numpy(), keras_probabilities(trained_model, decoded), atol=1e-5
    )


def test_bytes_of_another_size_and_colour_are_converted_and_resized(trained_model, loaded):
    rgb = np.random.default_rng(5).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    result = loaded.signatures["serving_bytes"](image_bytes=tf.constant([_png(rgb)]))
    gray = tf.io.decode_png(_png(rgb), channels=1)
    reference = tf.image.resize(
        tf.cast(gray, tf.float32), (28, 28), method="bilinear", antialias=True
    ).numpy()
    np.testing.assert_allclose(
        result["probabilities"].numpy(),
        keras_probabilities(trained_model, reference[None]),
        atol=1e-5,
    )


def test_decode_images_keeps_same_size_pixels_exact():
    image = np.random.default_rng(2).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    decoded = kmc.export.decode_images(tf.constant([_png(image)]), (9, 7, 3)).numpy()
    np.testing.assert_array_equal(decoded[0], image.astype("float32"))
    resized = kmc.export.decode_images(tf.constant([_png(image)]), (4, 5, 1)).numpy()
    assert resized.shape == (1, 4, 5, 1) and resized.dtype == np.float32
    assert 0.0 <= resized.min() and resized.max() <= 255.0


@pytest.mark.parametrize(
    "signature,shape",
    [
        ("serving_default", (2, 32, 32, 1)),
        ("serving_default", (1, 28, 28, 3)),
        ("serving_uint8", (1, 27, 28, 1)),
        # One image without its batch dimension: "Incompatible shapes: [3] vs. [2]" before.
        ("serving_default", (28, 28, 1)),
        ("serving_uint8", (28, 28, 1)),
        ("serving_default", (28, 28)),
        ("serving_default", ()),
        ("serving_default", (1, 28, 28, 1, 1)),
    ],
)
def test_pixels_of_the_wrong_shape_are_rejected_clearly(loaded, signature, shape):
    dtype = tf.uint8 if signature == "serving_uint8" else tf.float32
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        loaded.signatures[signature](images=tf.zeros(shape, dtype))
    message = str(error.value)
    assert f"{signature}: images must have shape [batch, 28, 28, 1]" in message
    assert f"but has shape [{' '.join(map(str, shape))}]" in message
    assert "a batch of one" in message and "serving_bytes" in message


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_rejected_not_classified(loaded, sample_images, value):
    images = sample_images[0].astype("float32")
    images[1, 3, 4, 0] = value
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"serving_default: images holds 1 NaN or infinite values \(first at index "
        r"\[\[1 3 4 0\]\]\); send raw pixels in \[0, 255\]",
    ):
        loaded.signatures["serving_default"](images=tf.constant(images))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(lambda png: tf.constant(png), id="scalar"),
        pytest.param(lambda png: tf.constant([[png, png]]), id="matrix"),
        pytest.param(lambda png: tf.constant([[png]]), id="column"),
    ],
)
def test_image_bytes_must_be_a_vector(loaded, sample_images, value):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        loaded.signatures["serving_bytes"](image_bytes=value(_png(sample_images[0][0])))
    assert "serving_bytes: image_bytes must be a vector [batch] of encoded files" in str(
        error.value
    )
    assert "a list of one" in str(error.value)


@pytest.mark.parametrize(
    "signature,value",
    [
        ("serving_default", tf.zeros((0, 28, 28, 1), tf.float32)),
        ("serving_uint8", tf.zeros((0, 28, 28, 1), tf.uint8)),
        ("serving_bytes", tf.zeros((0,), tf.string)),
    ],
)
def test_an_empty_batch_returns_an_empty_result(loaded, signature, value):
    name = "image_bytes" if signature == "serving_bytes" else "images"
    result = loaded.signatures[signature](**{name: value})
    assert result["probabilities"].shape == (0, 10)
    assert result["probabilities"].dtype == tf.float32
    assert result["class_id"].shape == (0,) and result["class_id"].dtype == tf.int64
    assert result["class_name"].shape == (0,) and result["class_name"].dtype == tf.string


def _pil_file(image, fmt: str, mode: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).convert(mode).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["GIF", "BMP"])
def test_gif_and_bmp_serve_a_grayscale_model(trained_model, loaded, sample_images, fmt):
    images, _ = sample_images
    gray = [_pil_file(image[..., 0], fmt, "L") for image in images[:3]]
    rgb = _pil_file(np.repeat(images[3], 3, axis=-1), fmt, "RGB")
    result = loaded.signatures["serving_bytes"](image_bytes=tf.constant([*gray, rgb]))
    # A gray image (here: the same pixels in three channels) comes back pixel for pixel.
    np.testing.assert_allclose(
        result["probabilities"].numpy(), keras_probabilities(trained_model, images[:4]), atol=1e-5
    )


def test_gif_and_bmp_colour_is_converted_with_the_grayscale_weights():
    rgb = np.random.default_rng(4).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    gray = np.round(rgb.astype("float64") @ [0.2989, 0.5870, 0.1140])
    for fmt in ("BMP", "GIF"):
        decoded = kmc.export.decode_images(
            tf.constant([_pil_file(rgb, fmt, "RGB")]), (6, 5, 1)
        ).numpy()[0, ..., 0]
        if fmt == "BMP":  # lossless
            np.testing.assert_allclose(decoded, gray, atol=1.0)
        assert decoded.shape == (6, 5) and 0 <= decoded.min() and decoded.max() <= 255
    colour = kmc.export.decode_images(tf.constant([_pil_file(rgb, "BMP", "RGB")]), (6, 5, 3))
    np.testing.assert_array_equal(colour.numpy()[0], rgb.astype("float32"))


def test_corrupt_bytes_name_the_problem_and_the_server_lives_on(
    trained_model, loaded, sample_images
):
    images, _ = sample_images
    good = _png(images[0])
    signature = loaded.signatures["serving_bytes"]
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"image_bytes\[1\] \(13 bytes\) is not"
    ):
        signature(image_bytes=tf.constant([good, b"not an image!"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes\[0\] \(0 bytes\)"):
        signature(image_bytes=tf.constant([b""]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="PNG"):
        signature(image_bytes=tf.constant([good[: len(good) // 2]]))
    # The same loaded model keeps answering after the errors.
    result = signature(image_bytes=tf.constant([good]))
    np.testing.assert_allclose(
        result["probabilities"].numpy(), keras_probabilities(trained_model, images[:1]), atol=1e-5
    )
