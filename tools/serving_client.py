"""Classifies image files with a model served by TF Serving (REST or gRPC).

    python tools/serving_client.py --host=localhost --model_name=fashion_mnist shirt.png bag.jpg

REST (default, port 8501) posts {"signature_name": "serving_bytes", "instances":
[{"image_bytes": {"b64": ...}}]} to /v1/models/<name>[/versions/<v>]:predict;
the body is built by keras_metacleaner.export.bytes_request. --protocol=grpc
(port 8500) needs `pip install tensorflow-serving-api`. Prints one line per
file: the file, the class name, the class id and its probability.

REST needs only absl-py and the standard library: keras_metacleaner/export/rest.py
is loaded by its path, so neither TensorFlow nor the keras_metacleaner package is
imported. Only --protocol=grpc imports TensorFlow (and tensorflow-serving-api).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import urllib.error
import urllib.request
from types import ModuleType

from absl import app, flags


def _load_rest() -> ModuleType:
    """keras_metacleaner/export/rest.py as a stand-alone module.

    `import keras_metacleaner.export.rest` would first run the package's
    `__init__.py`, which imports TensorFlow: seconds of start-up, and a
    TensorFlow install, for a client that only sends JSON. rest.py uses only the
    standard library, so it is executed on its own, from this checkout or else
    from the installed package (found without importing it).

    Returns:
        The loaded module (`predict_url`, `bytes_request`, the ports, ...).

    Raises:
        SystemExit: rest.py is in neither place.
    """
    path = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), os.pardir, "keras_metacleaner", "export"
    )
    if not os.path.isfile(os.path.join(path, "rest.py")):
        # find_spec of a top-level name locates the package without executing it.
        package = importlib.util.find_spec("keras_metacleaner")
        if package is not None and package.submodule_search_locations:
            path = os.path.join(package.submodule_search_locations[0], "export")
    path = os.path.normpath(os.path.join(path, "rest.py"))
    if os.path.isfile(path):
        spec = importlib.util.spec_from_file_location("_kmc_serving_rest", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    raise SystemExit(
        "serving_client.py: cannot find keras_metacleaner/export/rest.py; run it from the "
        "repository checkout or pip install keras-metacleaner."
    )


rest = _load_rest()

FLAGS = flags.FLAGS
flags.DEFINE_string("host", "localhost", "TF Serving host.")
flags.DEFINE_integer("port", None, "Port; default 8501 for REST, 8500 for gRPC.")
flags.DEFINE_string("model_name", "fashion_mnist", "TF Serving MODEL_NAME.")
flags.DEFINE_integer("version", None, "Model version; default: the latest the server has.")
flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "Request protocol.")
flags.DEFINE_float("timeout", 30.0, "Request timeout in seconds.")


def read_files(paths: list[str]) -> list[bytes]:
    if not paths:
        raise app.UsageError("Give at least one image file (PNG or JPEG) as an argument.")
    contents = []
    for path in paths:
        if not os.path.isfile(path):
            raise app.UsageError(f"Image file {path!r} does not exist.")
        with open(path, "rb") as handle:
            contents.append(handle.read())
    return contents


def predict_rest(images: list[bytes]) -> list[dict]:
    url = rest.predict_url(
        FLAGS.host, FLAGS.model_name, port=FLAGS.port or rest.REST_PORT, version=FLAGS.version
    )
    request = urllib.request.Request(
        url,
        data=rest.encode_request(rest.bytes_request(images)),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=FLAGS.timeout) as response:
            return rest.parse_predictions(response.read())
    except urllib.error.HTTPError as error:
        # TF Serving explains failures in the body: {"error": "..."}.
        body = error.read().decode("utf-8", "replace")
        try:
            detail = json.loads(body).get("error", body)
        except (json.JSONDecodeError, AttributeError):
            detail = body
        raise SystemExit(f"{url} answered HTTP {error.code}: {detail}") from error
    except urllib.error.URLError as error:
        raise SystemExit(f"Cannot reach TF Serving at {url}: {error.reason}") from error


def predict_grpc(images: list[bytes]) -> list[dict]:
    try:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError as error:
        raise SystemExit(
            f"--protocol=grpc needs the tensorflow-serving-api package ({error}); "
            "pip install tensorflow-serving-api, or use --protocol=rest."
        ) from error

    target = f"{FLAGS.host}:{FLAGS.port or rest.GRPC_PORT}"
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = FLAGS.model_name
    request.model_spec.signature_name = rest.SIGNATURE_BYTES
    if FLAGS.version is not None:
        request.model_spec.version.value = FLAGS.version
    request.inputs[rest.BYTES_INPUT].CopyFrom(tf.make_tensor_proto(images, shape=[len(images)]))
    try:
        outputs = stub.Predict(request, FLAGS.timeout).outputs
    except grpc.RpcError as error:
        raise SystemExit(
            f"gRPC Predict to {target} failed: {error.code()}: {error.details()}"
        ) from error
    probabilities = tf.make_ndarray(outputs["probabilities"])
    class_ids = tf.make_ndarray(outputs["class_id"])
    class_names = tf.make_ndarray(outputs["class_name"])
    return [
        {
            "probabilities": p.tolist(),
            "class_id": int(i),
            "class_name": n.decode("utf-8"),
        }
        for p, i, n in zip(probabilities, class_ids, class_names)
    ]


def main(argv):
    paths = argv[1:]
    images = read_files(paths)
    predictions = predict_rest(images) if FLAGS.protocol == "rest" else predict_grpc(images)
    if len(predictions) != len(paths):
        raise SystemExit(f"Sent {len(paths)} images but got {len(predictions)} predictions.")
    for path, prediction in zip(paths, predictions):
        class_id = int(prediction["class_id"])
        probability = prediction["probabilities"][class_id]
        print(f"{path}\t{prediction['class_name']}\t{class_id}\t{probability:.4f}")
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
