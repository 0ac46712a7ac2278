"""The serving signatures: pixels or encoded files in, class out.

Every signature returns the same three outputs:

- `probabilities`: float32 `[batch, num_classes]`,
- `class_id`: int64 `[batch]`, the arg-max,
- `class_name`: string `[batch]`, looked up in `assets/class_names.txt`.

Inputs (a signature has one dtype per input, so pixels come in two):

- `serving_default`: `images` float32 `[batch, H, W, C]`, raw pixels in
  [0, 255]. uint8 pixels sent as JSON numbers arrive here unchanged, since
  every integer in [0, 255] is exact in float32.
- `serving_uint8`: `images` uint8 `[batch, H, W, C]`, for gRPC clients that
  send `DT_UINT8` tensors (4x smaller than float32).
- `serving_bytes`: `image_bytes` string `[batch]`, encoded JPEG / PNG (GIF,
  BMP) files, decoded to C channels and resized to H x W in the graph. Over
  REST send each file as `{"b64": ...}`; TF Serving decodes the base64.

The backbone's normalisation is part of the model, so all three take raw
pixels and clients need no preprocessing code.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# The names REST requests use are defined in rest.py, which must stay free of
# TensorFlow so the serving client can load it alone; one definition for both.
from keras_metacleaner.export.rest import (
    BYTES_INPUT,
    PIXELS_INPUT,
    SIGNATURE_BYTES,
    SIGNATURE_DEFAULT,
)

OUTPUT_KEYS = ("probabilities", "class_id", "class_name")
SIGNATURE_UINT8 = "serving_uint8"
SIGNATURES = (SIGNATURE_DEFAULT, SIGNATURE_UINT8, SIGNATURE_BYTES)


def _check_pixel_shape(images: tf.Tensor, image_shape: tuple, signature: str) -> tf.Tensor:
    """Fails with a readable message on images of the wrong size.

    The signature declares `[None, H, W, C]`, but neither a loaded
    SavedModel's signature function nor TF Serving's session enforces it;
    without this check a wrong size fails deep in the network ("Input to
    reshape is a tensor with 8192 values...").
    """
    expected = tf.constant(image_shape, tf.int32)
    got = tf.shape(images, out_type=tf.int32)
    ok = tf.logical_and(tf.equal(tf.size(got), 4), tf.reduce_all(tf.equal(got[1:], expected)))
    dims = ", ".join(map(str, image_shape))
    message = tf.strings.format(
        f"{signature} expects images of shape [batch, {dims}] (batch, height, width, "
        "channels) but got shape {}; resize them on the client, or send encoded files to "
        f"{SIGNATURE_BYTES}, which resizes them in the graph.",
        (got,),
    )
    check = tf.Assert(ok, [message], name="check_image_shape")
    with tf.control_dependencies([check]):
        return tf.ensure_shape(tf.identity(images), (None, *image_shape))


def _is_known_image(data: tf.Tensor) -> tf.Tensor:
    """True when the first bytes are a JPEG, PNG, GIF or BMP signature."""

    def starts_with(magic: bytes) -> tf.Tensor:
        return tf.equal(tf.strings.substr(data, 0, len(magic)), magic)

    return tf.reduce_any(
        [
            starts_with(b"\xff\xd8\xff"),
            starts_with(b"\x89PNG\r\n\x1a\n"),
            starts_with(b"GIF8"),
            starts_with(b"BM"),
        ]
    )


def decode_images(encoded: tf.Tensor, image_shape: tuple) -> tf.Tensor:
    """Decodes and resizes a batch of encoded image files.

    Args:
        encoded: string `[batch]` of JPEG / PNG / GIF / BMP file contents.
        image_shape: `(H, W, C)` the model takes; files are converted to C
            channels and resized (bilinear, antialiased) to H x W when their
            size differs.

    Returns:
        float32 `[batch, H, W, C]` raw pixels in [0, 255].

    Example:

    >>> import tensorflow as tf
    >>> png = tf.io.encode_png(tf.zeros((5, 7, 1), tf.uint8))
    >>> decode_images(tf.stack([png]), (28, 28, 1)).shape
    TensorShape([1, 28, 28, 1])
    """
    height, width, channels = image_shape

    def decode_one(args):
        data, index = args
        message = tf.strings.format(
            f"{SIGNATURE_BYTES}: {BYTES_INPUT}" + "[{}] ({} bytes) is not a JPEG, PNG, GIF or "
            "BMP file; send the raw file contents (over REST, base64-encoded in a b64 object).",
            (index, tf.strings.length(data)),
        )
        check = tf.Assert(_is_known_image(data), [message], name="check_image_format")
        with tf.control_dependencies([check]):
            image = tf.io.decode_image(
                data, channels=channels, dtype=tf.uint8, expand_animations=False
            )
        image = tf.cast(image, tf.float32)
        size = tf.shape(image)[:2]
        image = tf.cond(
            tf.reduce_all(tf.equal(size, [height, width])),
            lambda: image,
            lambda: tf.image.resize(image, (height, width), method="bilinear", antialias=True),
        )
        return tf.ensure_shape(image, (height, width, channels))

    indices = tf.range(tf.shape(encoded)[0])
    return tf.map_fn(
        decode_one,
        (encoded, indices),
        fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32),
    )


def class_name_table(class_names_file: str) -> tf.lookup.StaticHashTable:
    """A table from class id (int64) to name, read from a one-name-per-line file.

    Initialised from the file, so a SavedModel holding the table copies the
    file into `assets/` and re-reads it on load.

    Args:
        class_names_file: text file, line i is the name of class i.

    Returns:
        A `tf.lookup.StaticHashTable`; unknown ids map to `""`.

    Example:

    >>> import tempfile
    >>> path = tempfile.mktemp()
    >>> _ = open(path, "w").write("cat\\ndog\\n")
    >>> class_name_table(path).lookup(tf.constant([1], tf.int64)).numpy()
    array([b'dog'], dtype=object)
    """
    initializer = tf.lookup.TextFileInitializer(
        class_names_file,
        key_dtype=tf.int64,
        key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        value_dtype=tf.string,
        value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
    )
    return tf.lookup.StaticHashTable(initializer, default_value="")


def serving_functions(
    model: keras.Model, image_shape: tuple, table: tf.lookup.StaticHashTable
) -> dict:
    """The serving functions and their input signatures.

    Args:
        model: `keras.Model`, raw-pixel images `[B, H, W, C]` -> probabilities.
        image_shape: `(H, W, C)`.
        table: class id -> name table (see `class_name_table`).

    Returns:
        `{signature_name: (function, [tf.TensorSpec])}` for
        `serving_default`, `serving_uint8` and `serving_bytes`.

    Example:

    >>> fns = serving_functions(model, (28, 28, 1), table)  # doctest: +SKIP
    >>> sorted(fns)  # doctest: +SKIP
    ['serving_bytes', 'serving_default', 'serving_uint8']
    """

    def classify(images):
        probabilities = tf.cast(model(images, training=False), tf.float32)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {
            "probabilities": probabilities,
            "class_id": class_id,
            "class_name": table.lookup(class_id),
        }

    def serve_float(images):
        return classify(_check_pixel_shape(images, image_shape, SIGNATURE_DEFAULT))

    def serve_uint8(images):
        return classify(
            tf.cast(_check_pixel_shape(images, image_shape, SIGNATURE_UINT8), tf.float32)
        )

    def serve_bytes(image_bytes):
        return classify(decode_images(image_bytes, image_shape))

    pixels = (None, *image_shape)
    return {
        SIGNATURE_DEFAULT: (serve_float, [tf.TensorSpec(pixels, tf.float32, name=PIXELS_INPUT)]),
        SIGNATURE_UINT8: (serve_uint8, [tf.TensorSpec(pixels, tf.uint8, name=PIXELS_INPUT)]),
        SIGNATURE_BYTES: (serve_bytes, [tf.TensorSpec((None,), tf.string, name=BYTES_INPUT)]),
    }
