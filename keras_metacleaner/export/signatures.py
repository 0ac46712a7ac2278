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
- `serving_bytes`: `image_bytes` string `[batch]`, encoded JPEG / PNG / GIF /
  BMP files, decoded to C channels and resized to H x W in the graph. Over
  REST send each file as `{"b64": ...}`; TF Serving decodes the base64.

Bad input is an `InvalidArgument` error naming the signature, the input and
what was expected: pixels of another rank or size, NaN or infinite pixels,
image bytes that are not a vector or not an image file. An empty batch
returns empty outputs.

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


def _assert(ok: tf.Tensor, message: tf.Tensor, tensor: tf.Tensor, name: str) -> tf.Tensor:
    """`tensor`, available only after `ok` held (else `InvalidArgument` with `message`)."""
    check = tf.Assert(ok, [message], name=name)
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def _check_pixel_shape(images: tf.Tensor, image_shape: tuple, signature: str) -> tf.Tensor:
    """Fails with a readable message on pixels of the wrong rank or size.

    The signature declares `[None, H, W, C]`, but neither a loaded
    SavedModel's signature function nor TF Serving's session enforces it;
    without this check a wrong size fails deep in the network ("Input to
    reshape is a tensor with 8192 values...", "Incompatible shapes: [3] vs.
    [2]" for a single image sent without its batch dimension).
    """
    got = tf.shape(images, out_type=tf.int32)
    # Padded with -1 to rank 5, so that the comparison cannot fail on another rank, and
    # compared as a whole (tf.rank could be folded to the declared 4 when the graph is
    # optimised; neither a loaded signature nor TF Serving enforces the declared shape).
    padded = tf.concat([got, -tf.ones([5], tf.int32)], axis=0)[:5]
    ok = tf.logical_and(
        tf.greater_equal(padded[0], 0),
        tf.reduce_all(tf.equal(padded[1:], tf.constant((*image_shape, -1), tf.int32))),
    )
    dims = ", ".join(map(str, image_shape))
    message = tf.strings.format(
        f"{signature}: {PIXELS_INPUT} must have shape [batch, {dims}] (batch, height, width, "
        "channels) but has shape {}; send a single image as a batch of one, resize images on "
        f"the client, or send encoded files to {SIGNATURE_BYTES}, which resizes them in the "
        "graph.",
        (got,),
    )
    images = _assert(ok, message, images, "check_image_shape")
    return tf.ensure_shape(images, (None, *image_shape))


def _check_finite(images: tf.Tensor, signature: str) -> tf.Tensor:
    """Fails on NaN or infinite pixels, which would otherwise return a confident class."""
    bad = tf.logical_not(tf.math.is_finite(images))
    count = tf.reduce_sum(tf.cast(bad, tf.int64))
    message = tf.strings.format(
        f"{signature}: {PIXELS_INPUT} holds {{}} NaN or infinite values (first at index {{}}); "
        "send raw pixels in [0, 255].",
        (count, tf.cast(tf.where(bad)[:1], tf.int64)),
    )
    return _assert(tf.equal(count, 0), message, images, "check_finite_pixels")


def _check_bytes_rank(encoded: tf.Tensor) -> tf.Tensor:
    """Fails unless `encoded` is a vector `[batch]` of files (not a scalar, not a matrix)."""
    got = tf.shape(encoded, out_type=tf.int32)
    message = tf.strings.format(
        f"{SIGNATURE_BYTES}: {BYTES_INPUT} must be a vector [batch] of encoded files but has "
        "shape {}; send a list of files (a single file as a list of one).",
        (got,),
    )
    # Not tf.rank: the declared [None] would fold it to 1 when the graph is optimised, and
    # neither a loaded signature nor TF Serving enforces that declaration.
    padded = tf.concat([got, [-1, -1]], axis=0)[:2]
    ok = tf.logical_and(tf.greater_equal(padded[0], 0), tf.equal(padded[1], -1))
    encoded = _assert(ok, message, encoded, "check_bytes_rank")
    return tf.ensure_shape(encoded, (None,))


def _is_known_image(data: tf.Tensor) -> tf.Tensor:
    """True when the first bytes are a JPEG, PNG, GIF or BMP signature."""
    return tf.reduce_any([_starts_with(data, magic) for magic in _MAGIC.values()])


_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n", "gif": b"GIF8", "bmp": b"BM"}


def _starts_with(data: tf.Tensor, magic: bytes) -> tf.Tensor:
    return tf.equal(tf.strings.substr(data, 0, len(magic)), magic)


def _decode_to_channels(data: tf.Tensor, channels: int) -> tf.Tensor:
    """float32 `[h, w, channels]` of one JPEG / PNG / GIF / BMP file.

    TensorFlow decodes GIF and BMP only to 3 (or their own) channels, so those
    are decoded to RGB and, for a one-channel model, converted to gray with
    `tf.image.rgb_to_grayscale`'s weights, rounded like the PNG and JPEG
    decoders' integers (a gray BMP gives its pixels back exactly).
    """

    def native():
        image = tf.io.decode_image(data, channels=channels, dtype=tf.uint8, expand_animations=False)
        return tf.cast(image, tf.float32)

    def via_rgb():
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        image = tf.cast(image, tf.float32)
        if channels == 1:
            image = tf.clip_by_value(tf.round(tf.image.rgb_to_grayscale(image)), 0.0, 255.0)
        return image

    if channels == 3:
        return native()
    rgb_only = tf.logical_or(_starts_with(data, _MAGIC["gif"]), _starts_with(data, _MAGIC["bmp"]))
    return tf.cond(rgb_only, via_rgb, native)


def decode_images(encoded: tf.Tensor, image_shape: tuple) -> tf.Tensor:
    """Decodes and resizes a batch of encoded image files.

    Args:
        encoded: string `[batch]` of JPEG / PNG / GIF / BMP file contents.
        image_shape: `(H, W, C)` the model takes; files are converted to C
            channels and resized (bilinear, antialiased) to H x W when their
            size differs. GIF (first frame) and BMP are decoded as RGB and,
            for C = 1, converted to gray.

    Returns:
        float32 `[batch, H, W, C]` raw pixels in [0, 255].

    Example:

    >>> import tensorflow as tf
    >>> png = tf.io.encode_png(tf.zeros((5, 7, 1), tf.uint8))
    >>> decode_images(tf.stack([png]), (28, 28, 1)).shape
    TensorShape([1, 28, 28, 1])
    """
    height, width, channels = image_shape
    encoded = _check_bytes_rank(encoded)

    def decode_one(args):
        data, index = args
        message = tf.strings.format(
            f"{SIGNATURE_BYTES}: {BYTES_INPUT}" + "[{}] ({} bytes) is not a JPEG, PNG, GIF or "
            "BMP file; send the raw file contents (over REST, base64-encoded in a b64 object).",
            (index, tf.strings.length(data)),
        )
        data = _assert(_is_known_image(data), message, data, "check_image_format")
        image = _decode_to_channels(data, channels)
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

    num_classes = int(model.output_shape[-1])

    def classify(images):
        probabilities = tf.cast(model(images, training=False), tf.float32)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {
            "probabilities": probabilities,
            "class_id": class_id,
            "class_name": table.lookup(class_id),
        }

    def empty():
        # TensorFlow's CPU convolution fails on a batch of 0: answer without the model.
        return {
            "probabilities": tf.zeros((0, num_classes), tf.float32),
            "class_id": tf.zeros((0,), tf.int64),
            "class_name": tf.zeros((0,), tf.string),
        }

    def classify_batch(batch, images_fn):
        """`classify(images_fn())`, or empty outputs for a batch of 0 (the model never runs)."""
        return tf.cond(tf.shape(batch)[0] > 0, lambda: classify(images_fn()), empty)

    def serve_float(images):
        images = _check_pixel_shape(images, image_shape, SIGNATURE_DEFAULT)
        return classify_batch(images, lambda: _check_finite(images, SIGNATURE_DEFAULT))

    def serve_uint8(images):
        images = _check_pixel_shape(images, image_shape, SIGNATURE_UINT8)
        return classify_batch(images, lambda: tf.cast(images, tf.float32))

    def serve_bytes(image_bytes):
        image_bytes = _check_bytes_rank(image_bytes)
        return classify_batch(image_bytes, lambda: decode_images(image_bytes, image_shape))

    pixels = (None, *image_shape)
    return {
        SIGNATURE_DEFAULT: (serve_float, [tf.TensorSpec(pixels, tf.float32, name=PIXELS_INPUT)]),
        SIGNATURE_UINT8: (serve_uint8, [tf.TensorSpec(pixels, tf.uint8, name=PIXELS_INPUT)]),
        SIGNATURE_BYTES: (serve_bytes, [tf.TensorSpec((None,), tf.string, name=BYTES_INPUT)]),
    }
