"""The inference_onnx role's model server (files/oip_server.py) in-process: Open Inference Protocol v2."""

from __future__ import annotations

import importlib.util
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from tests.conftest import REPO
from tests.integration.conftest import MODEL_B, MODEL_W, make_model

_SERVER = REPO / "ansible" / "roles" / "inference_onnx" / "files" / "oip_server.py"
_spec = importlib.util.spec_from_file_location("oip_server", _SERVER)
oip = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oip)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("oip")
    model = root / "affine.onnx"
    make_model(model)
    (root / "broken.onnx").write_bytes(b"not an onnx model")
    config = {"models": [{"name": "affine", "path": str(model)},
                         {"name": "broken", "path": str(root / "broken.onnx")}]}
    srv = oip.make_server(config, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def call(url: str, body: dict | bytes | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_health_and_metadata(server):
    assert call(f"{server}/v2/health/live") == (200, {"live": True})
    # one model failed to load: the server is live but not ready
    assert call(f"{server}/v2/health/ready") == (503, {"ready": False})
    assert call(f"{server}/v2")[1]["name"] == "infra-onnx"
    status, meta = call(f"{server}/v2/models/affine")
    assert status == 200
    assert meta == {"name": "affine", "versions": ["1"], "platform": "onnxruntime_onnx",
                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
                    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]}
    assert call(f"{server}/v2/models/affine/ready") == (200, {"name": "affine", "ready": True})
    assert call(f"{server}/v2/models/affine/versions/1/ready")[0] == 200
    assert call(f"{server}/v2/models/affine/versions/2/ready")[0] == 404
    status, body = call(f"{server}/v2/models/broken/ready")
    assert status == 503 and "failed to load" in body["error"]


def test_infer_gives_the_numerically_right_answer(server):
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5], [10.0, 0.0, -4.0]], dtype=np.float32)
    status, body = call(f"{server}/v2/models/affine/infer", {
        "id": "req-7",
        "inputs": [{"name": "x", "shape": [3, 3], "datatype": "FP32", "data": x.reshape(-1).tolist()}],
    })
    assert status == 200, body
    expected = x @ np.array(MODEL_W, dtype=np.float32) + np.array(MODEL_B, dtype=np.float32)
    assert body["id"] == "req-7" and body["model_name"] == "affine" and body["model_version"] == "1"
    (out,) = body["outputs"]
    assert out["name"] == "y" and out["datatype"] == "FP32" and out["shape"] == [3, 2]
    np.testing.assert_allclose(np.array(out["data"]).reshape(3, 2), expected, rtol=1e-6)


def test_nested_data_and_requested_outputs_are_accepted(server):
    status, body = call(f"{server}/v2/models/affine/versions/1/infer", {
        "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [[1, 0, 0]]}],
        "outputs": [{"name": "y"}],
    })
    assert status == 200
    assert body["outputs"][0]["data"] == pytest.approx([MODEL_W[0][0] + MODEL_B[0], MODEL_W[0][1] + MODEL_B[1]])


def _x(datatype="FP32", shape=(1, 3), data=(1, 2, 3), name="x") -> dict:
    return {"inputs": [{"name": name, "shape": list(shape), "datatype": datatype, "data": list(data)}]}


@pytest.mark.parametrize(
    ("url", "body", "status", "message"),
    [
        ("/v2/models/nope/infer", {"inputs": []}, 404, "no model named 'nope'"),
        ("/v2/models/affine/infer", b"{not json", 400, "not JSON"),
        ("/v2/models/affine/infer", {"inputs": []}, 400, "non-empty 'inputs'"),
        ("/v2/models/affine/infer", _x(name="z"), 400, "unknown input 'z'"),
        ("/v2/models/affine/infer", _x(datatype="INT64"), 400, "the model expects FP32"),
        ("/v2/models/affine/infer", _x(datatype="COMPLEX"), 400, "unsupported datatype"),
        ("/v2/models/affine/infer", _x(shape=(2, 3)), 400, "does not fit shape [2, 3]"),
        ("/v2/models/affine/infer", _x(shape=(1, 4), data=(1, 2, 3, 4)), 400, "inference failed"),
        ("/v2/models/affine/infer", {**_x(), "outputs": [{"name": "q"}]}, 400, "unknown output(s): q"),
        ("/v2/models/affine/versions/9/infer", {"inputs": []}, 404, "no version '9'"),
        ("/v2/nothing", {"inputs": []}, 404, "no such endpoint"),
    ],
)
def test_errors_are_json_with_a_status(server, url, body, status, message):
    got_status, got = call(server + url, body)
    assert got_status == status
    assert message in got["error"]
