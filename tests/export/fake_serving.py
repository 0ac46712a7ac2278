"""A loopback stand-in for TF Serving's REST predict endpoint, for tests only.

No TF Serving server can be installed here, so this reproduces the part of it
the client relies on (tensorflow/serving `g3doc/api_rest.md`): the URL
`/v1/models/<name>[/versions/<v>]:predict`, a JSON body in row format whose
`{"b64": ...}` objects are base64-decoded to bytes before the signature runs,
a row-format answer `{"predictions": [...]}`, and `{"error": ...}` with an
HTTP error status when the signature fails.
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import threading

import numpy as np
import tensorflow as tf

_PREDICT = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")


def _decode_value(value):
    """`{"b64": s}` -> bytes, recursively, as TF Serving does."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"], validate=True)
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    return value


def decode_instances(body: dict, signature) -> dict:
    """Turns a REST row-format body into the signature's input tensors.

    Args:
        body: the parsed JSON request.
        signature: a concrete function from `loaded.signatures[...]`.

    Returns:
        `{input_name: tf.Tensor}` with the dtypes the signature declares.
    """
    specs = signature.structured_input_signature[1]
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise ValueError("'instances' must be a non-empty list")
    columns = {name: [] for name in specs}
    for instance in instances:
        if not isinstance(instance, dict):
            if len(specs) != 1:
                raise ValueError("instances must be objects when a signature has several inputs")
            instance = {next(iter(specs)): instance}
        if set(instance) != set(specs):
            raise ValueError(f"instance keys {sorted(instance)} != inputs {sorted(specs)}")
        for name, value in instance.items():
            columns[name].append(_decode_value(value))
    tensors = {}
    for name, spec in specs.items():
        if spec.dtype == tf.string:
            tensors[name] = tf.constant(columns[name], tf.string)
        else:
            tensors[name] = tf.constant(np.asarray(columns[name]), spec.dtype)
    return tensors


def _to_json(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def predict(loaded, body: dict) -> dict:
    """Runs a REST body through a loaded SavedModel; returns the REST answer."""
    name = body.get("signature_name", "serving_default")
    if name not in loaded.signatures:
        raise ValueError(f'Serving signature name: "{name}" not found in signature def')
    signature = loaded.signatures[name]
    outputs = signature(**decode_instances(body, signature))
    outputs = {key: value.numpy().tolist() for key, value in outputs.items()}
    rows = len(next(iter(outputs.values())))
    return {
        "predictions": [
            {key: _to_json(value[i]) for key, value in outputs.items()} for i in range(rows)
        ]
    }


class FakeTFServing:
    """Serves one SavedModel on `127.0.0.1:<free port>` in a background thread.

    Use as a context manager; `.port` is the REST port, `.requests` the
    parsed bodies received.
    """

    def __init__(self, saved_model_dir: str, model_name: str):
        self.loaded = tf.saved_model.load(saved_model_dir)
        self.model_name = model_name
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, status: int, payload: dict):
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802 (http.server's naming)
                match = _PREDICT.match(self.path)
                if not match or match.group(1) != server.model_name:
                    self._reply(404, {"error": f"Servable not found for request: {self.path}"})
                    return
                length = int(self.headers.get("Content-Length", 0))
                try:
                    body = json.loads(self.rfile.read(length))
                    server.requests.append(body)
                    self._reply(200, predict(server.loaded, body))
                except (ValueError, KeyError, TypeError, tf.errors.OpError) as error:
                    message = getattr(error, "message", None) or str(error)
                    self._reply(400, {"error": message})

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


class FakeTFServingGrpc:
    """`PredictionService.Predict` of one SavedModel on `127.0.0.1:<free port>`.

    Needs `tensorflow-serving-api` (and grpcio); the request's TensorProtos go
    through `tf.make_ndarray`, as the server turns them into tensors.
    """

    def __init__(self, saved_model_dir: str, model_name: str):
        from concurrent import futures

        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        loaded = tf.saved_model.load(saved_model_dir)

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):  # noqa: N802 (gRPC's naming)
                if request.model_spec.name != model_name:
                    context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found: {request}")
                name = request.model_spec.signature_name or "serving_default"
                signature = loaded.signatures[name]
                inputs = {
                    key: tf.constant(tf.make_ndarray(proto))
                    for key, proto in request.inputs.items()
                }
                try:
                    outputs = signature(**inputs)
                except tf.errors.InvalidArgumentError as error:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)
                response = predict_pb2.PredictResponse()
                response.model_spec.CopyFrom(request.model_spec)
                for key, value in outputs.items():
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
                return response

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            Servicer(), self._server
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def __enter__(self):
        self._server.start()
        return self

    def __exit__(self, *exc):
        self._server.stop(grace=None).wait(timeout=10)
