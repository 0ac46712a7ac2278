"""The TF Serving REST predict request and response, shared by client and tests.

Only the standard library is used, so the same body is built by
`tools/serving_client.py`, by tests and by anyone who copies this file. Keep it
that way: the client loads this file by path, without running
`keras_metacleaner/__init__.py` (which imports TensorFlow), so a REST client
starts fast and needs no TensorFlow; nothing here may import the package.
REST row format (TF Serving's `api_rest.md`):

    POST http://HOST:8501/v1/models/NAME[/versions/V]:predict
    {"signature_name": "serving_bytes",
     "instances": [{"image_bytes": {"b64": "<base64 of the PNG/JPEG file>"}}, ...]}

TF Serving base64-decodes every `{"b64": ...}` object into a `DT_STRING`
element before the signature runs; the answer is
`{"predictions": [{"probabilities": [...], "class_id": 3, "class_name": "Dress"}, ...]}`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence

# The names a request carries. They are defined here, not in signatures.py, because
# signatures.py imports TensorFlow; signatures.py imports them from here, so the
# signatures and the requests cannot drift apart.
SIGNATURE_DEFAULT = "serving_default"
SIGNATURE_BYTES = "serving_bytes"
BYTES_INPUT = "image_bytes"
PIXELS_INPUT = "images"

REST_PORT = 8501
GRPC_PORT = 8500


def predict_url(
    host: str, model_name: str, port: int = REST_PORT, version: int | None = None
) -> str:
    """The REST predict URL of a model (optionally one version).

    Args:
        host: server host name or address.
        model_name: TF Serving's `MODEL_NAME`.
        port: REST port (TF Serving's `--rest_api_port`, 8501 in its image).
        version: integer version, or `None` for the latest.

    Returns:
        The URL string.

    Example:

    >>> predict_url("localhost", "fashion_mnist")
    'http://localhost:8501/v1/models/fashion_mnist:predict'
    """
    if not model_name or "/" in model_name:
        raise ValueError(f"model_name must be a non-empty name without '/', got {model_name!r}.")
    path = f"/v1/models/{model_name}"
    if version is not None:
        path += f"/versions/{int(version)}"
    return f"http://{host}:{int(port)}{path}:predict"


def bytes_request(images: Iterable[bytes], signature_name: str = SIGNATURE_BYTES) -> dict:
    """REST body for encoded image files (the `serving_bytes` signature).

    Args:
        images: contents of JPEG / PNG files, one per instance.
        signature_name: signature to call.

    Returns:
        A JSON-serialisable dict; `json.dumps` it and POST it to `predict_url`.

    Example:

    >>> bytes_request([b"\\x89PNG..."])["instances"][0]["image_bytes"]
    {'b64': 'iVBORy4uLg=='}
    """
    instances = []
    for i, data in enumerate(images):
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise ValueError(f"images[{i}] must be the non-empty bytes of an image file.")
        instances.append({BYTES_INPUT: {"b64": base64.b64encode(bytes(data)).decode("ascii")}})
    if not instances:
        raise ValueError("A predict request needs at least one image.")
    return {"signature_name": signature_name, "instances": instances}


def pixels_request(images: Sequence, signature_name: str = SIGNATURE_DEFAULT) -> dict:
    """REST body for raw pixels (the `serving_default` signature).

    Args:
        images: nested lists or arrays `[batch, H, W, C]` of pixel values in
            [0, 255] (anything with `.tolist()`, or lists).

    Returns:
        A JSON-serialisable dict.

    Example:

    >>> pixels_request([[[[0], [255]]]])["instances"]
    [{'images': [[[0], [255]]]}]
    """
    rows = images.tolist() if hasattr(images, "tolist") else list(images)
    if not rows:
        raise ValueError("A predict request needs at least one image.")
    return {"signature_name": signature_name, "instances": [{PIXELS_INPUT: row} for row in rows]}


def encode_request(body: dict) -> bytes:
    """The UTF-8 JSON bytes of a request body, as POSTed.

    Args:
        body: a dict from `bytes_request` or `pixels_request`.

    Returns:
        `bytes`.

    Example:

    >>> encode_request({"instances": [1]})
    b'{"instances": [1]}'
    """
    return json.dumps(body).encode("utf-8")


def parse_predictions(response: bytes | str | dict) -> list[dict]:
    """Reads a REST predict response (row format).

    Args:
        response: the response body (bytes, text or parsed JSON).

    Returns:
        One dict per instance with `probabilities`, `class_id` and
        `class_name`.

    Raises:
        RuntimeError: the server answered with `{"error": ...}`.
        ValueError: the body is not a predict response.

    Example:

    >>> parse_predictions('{"predictions": [{"class_id": 1, "class_name": "b"}]}')
    [{'class_id': 1, 'class_name': 'b'}]
    """
    if isinstance(response, (bytes, bytearray)):
        response = response.decode("utf-8")
    if isinstance(response, str):
        try:
            response = json.loads(response)
        except json.JSONDecodeError as error:
            raise ValueError(f"The predict response is not JSON: {response[:200]!r}") from error
    if not isinstance(response, dict):
        raise ValueError(f"The predict response is not a JSON object: {str(response)[:200]}")
    if "error" in response:
        raise RuntimeError(f"TF Serving answered with an error: {response['error']}")
    if "predictions" not in response:
        raise ValueError(f"The predict response has no 'predictions': {str(response)[:200]}")
    return list(response["predictions"])
