"""Export for TF Serving: a plain SavedModel, cleaner removed, versioned and atomic.

Example:

>>> import keras_metacleaner as kmc
>>> kmc.export.export_for_serving(model, "exports/fashion_mnist")  # doctest: +SKIP
'.../exports/fashion_mnist/1'
"""

from keras_metacleaner.export.rest import (
    bytes_request,
    encode_request,
    parse_predictions,
    pixels_request,
    predict_url,
)
from keras_metacleaner.export.saved_model import (
    CLASS_NAMES_ASSET,
    export_for_serving,
    serving_model,
)
from keras_metacleaner.export.signatures import (
    BYTES_INPUT,
    OUTPUT_KEYS,
    PIXELS_INPUT,
    SIGNATURES,
    decode_images,
)
from keras_metacleaner.export.versions import list_versions, next_version

__all__ = [
    "BYTES_INPUT",
    "CLASS_NAMES_ASSET",
    "OUTPUT_KEYS",
    "PIXELS_INPUT",
    "SIGNATURES",
    "bytes_request",
    "decode_images",
    "encode_request",
    "export_for_serving",
    "list_versions",
    "next_version",
    "parse_predictions",
    "pixels_request",
    "predict_url",
    "serving_model",
]
