#!/usr/bin/env python3
"""An ONNX Runtime model server speaking the Open Inference Protocol v2 (REST), the protocol of
KServe and Seldon Core v2. Standard library HTTP server plus onnxruntime and numpy.

Endpoints:
  GET  /v2/health/live                  {"live": true}
  GET  /v2/health/ready                 {"ready": true} once every model is loaded (503 before)
  GET  /v2                              server metadata
  GET  /v2/models/<m>[/versions/<v>]    model metadata (inputs/outputs with datatype and shape)
  GET  /v2/models/<m>[/versions/<v>]/ready
  POST /v2/models/<m>[/versions/<v>]/infer
Tensors are {"name", "shape", "datatype", "data"} with data flat in row-major order (nested lists
are accepted too); errors are {"error": "..."} with a 4xx/5xx status.

Config: a JSON file {"models": [{"name": ..., "path": ..., "version": "1", "providers": [...],
"require_gpu": false}]}. At start-up the server says, per model, whether ONNX Runtime runs it on
the GPU (CUDAExecutionProvider) or the CPU; a model with "require_gpu" that would run on the CPU
(no onnxruntime-gpu, no GPU, or CUDA/cuDNN libraries that do not load) stops it (exit 3) before
it serves anything. `--check` loads the models, prints that and exits (0, or 3).
The CUDA and cuDNN libraries come from pip's NVIDIA packages in the same virtualenv: they are
loaded before the first CUDA session (onnxruntime.preload_dlls where it exists).
Usage: oip_server.py --config models.json [--host 0.0.0.0] [--port 8000] [--pidfile FILE] [--check]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import glob
import importlib.util
import json
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVER_NAME = "infra-onnx"
SERVER_VERSION = "1.0"
MAX_BODY = 64 * 1024 * 1024
GPU_PROVIDER = "CUDAExecutionProvider"
EXIT_NO_GPU = 3
# pip's NVIDIA packages (nvidia/<name>/lib/*.so*), in the order they depend on each other.
_CUDA_LIBS = ("cuda_runtime", "cuda_nvrtc", "nvjitlink", "cublas", "cufft", "curand", "cudnn")
_ROUTE = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?/?$")

# Open Inference Protocol datatypes <-> numpy dtypes; ONNX type strings -> OIP datatypes.
_DTYPES = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object",
}
_ONNX_TYPES = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64", "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32",
    "tensor(int64)": "INT64", "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_preloaded: list[str] = []


def preload_cuda(ort) -> None:
    """Load the CUDA/cuDNN libraries of pip's NVIDIA packages once, before a CUDA session: with
    onnxruntime's own preload_dlls (1.21+), else from site-packages/nvidia/*/lib. Missing
    libraries are left for ONNX Runtime to report (it then falls back to the CPU)."""
    if _preloaded or GPU_PROVIDER not in ort.get_available_providers():
        return
    _preloaded.append("done")
    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls(cuda=True, cudnn=True, msvc=False)
        except Exception as exc:  # reported by the session's providers below
            print(f"{SERVER_NAME}: could not preload the CUDA libraries: {exc}", file=sys.stderr, flush=True)
        return
    spec = importlib.util.find_spec("nvidia")
    for root in list(spec.submodule_search_locations or []) if spec else []:
        for name in _CUDA_LIBS:
            for lib in sorted(glob.glob(os.path.join(root, name, "lib", "lib*.so*"))):
                with contextlib.suppress(OSError):
                    ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)


class Model:
    def __init__(self, name: str, path: str, version: str = "1", providers: list[str] | None = None,
                 require_gpu: bool = False) -> None:
        import onnxruntime as ort

        self.name, self.path, self.version = name, path, str(version)
        self.require_gpu = bool(require_gpu)
        available = ort.get_available_providers()
        asked = providers or [GPU_PROVIDER, "CPUExecutionProvider"]
        if GPU_PROVIDER in asked:
            preload_cuda(ort)
        wanted = [p for p in asked if p in available]
        self.session = ort.InferenceSession(path, providers=wanted or ["CPUExecutionProvider"])
        self.providers = list(self.session.get_providers())  # what ONNX Runtime really runs it with
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]

    @property
    def device(self) -> str:
        return "GPU" if self.providers and self.providers[0] == GPU_PROVIDER else "CPU"

    @staticmethod
    def _tensor_meta(arg) -> dict:
        shape = [d if isinstance(d, int) else -1 for d in (arg.shape or [])]
        return {"name": arg.name, "datatype": _ONNX_TYPES.get(arg.type, arg.type), "shape": shape}

    def metadata(self) -> dict:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [self._tensor_meta(i) for i in self.session.get_inputs()],
            "outputs": [self._tensor_meta(o) for o in self.session.get_outputs()],
        }

    def infer(self, request: dict) -> dict:
        import numpy as np

        if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
            raise RequestError(400, "the request needs a non-empty 'inputs' list")
        feeds = {}
        for tensor in request["inputs"]:
            name = tensor.get("name")
            if name not in self.inputs:
                raise RequestError(400, f"unknown input '{name}' (model inputs: {', '.join(self.inputs)})")
            datatype = str(tensor.get("datatype", "")).upper()
            if datatype not in _DTYPES:
                raise RequestError(400, f"input '{name}': unsupported datatype '{tensor.get('datatype')}'")
            expected = _ONNX_TYPES.get(self.inputs[name].type)
            if expected and expected != datatype:
                raise RequestError(400, f"input '{name}': datatype {datatype} but the model expects {expected}")
            shape = tensor.get("shape")
            if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise RequestError(400, f"input '{name}': 'shape' must be a list of non-negative integers")
            try:
                array = np.asarray(tensor.get("data"), dtype=_DTYPES[datatype]).reshape(shape)
            except (ValueError, TypeError) as exc:
                raise RequestError(400, f"input '{name}': data does not fit shape {shape}: {exc}") from None
            feeds[name] = array
        missing = sorted(set(self.inputs) - set(feeds))
        if missing:
            raise RequestError(400, f"missing input(s): {', '.join(missing)}")
        wanted = [o.get("name") for o in request.get("outputs") or []] or self.outputs
        unknown = [o for o in wanted if o not in self.outputs]
        if unknown:
            raise RequestError(400, f"unknown output(s): {', '.join(map(str, unknown))}")
        try:
            results = self.session.run(wanted, feeds)
        except Exception as exc:  # onnxruntime reports shape/type mismatches here
            raise RequestError(400, f"inference failed: {exc}") from None
        outputs = []
        for name, value in zip(wanted, results, strict=True):
            value = np.asarray(value)
            datatype = next((k for k, v in _DTYPES.items() if v == value.dtype.name), "BYTES")
            data = value.reshape(-1).tolist()
            if datatype == "BYTES":
                data = [v.decode() if isinstance(v, bytes) else str(v) for v in data]
            outputs.append({"name": name, "datatype": datatype, "shape": list(value.shape), "data": data})
        response = {"model_name": self.name, "model_version": self.version, "outputs": outputs}
        if "id" in request:
            response["id"] = request["id"]
        return response


class Registry:
    def __init__(self) -> None:
        self.models: dict[str, Model] = {}
        self.errors: dict[str, str] = {}
        self.no_gpu: dict[str, str] = {}  # models that asked for a GPU and would run on the CPU
        self.ready = False

    def load(self, config: dict) -> None:
        for entry in config.get("models", []):
            try:
                self.models[entry["name"]] = Model(entry["name"], entry["path"], entry.get("version", "1"),
                                                   entry.get("providers"), bool(entry.get("require_gpu")))
            except Exception as exc:  # reported by /ready and the metadata endpoints
                self.errors[entry["name"]] = f"{type(exc).__name__}: {exc}"
                print(f"model {entry['name']}: failed to load: {exc}", file=sys.stderr, flush=True)
        for name, model in self.models.items():
            print(f"{SERVER_NAME}: model {name} runs on the {model.device} ({', '.join(model.providers)})",
                  file=sys.stderr, flush=True)
            if model.require_gpu and model.device != "GPU":
                self.no_gpu[name] = gpu_missing(model)
        self.ready = not self.errors and not self.no_gpu


def gpu_missing(model: Model) -> str:
    """Why ``model``, which asked for a GPU, would run on the CPU (one line)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if GPU_PROVIDER not in available:
        why = (f"this ONNX Runtime ({getattr(ort, '__version__', '?')}) has no {GPU_PROVIDER} "
               f"(available: {', '.join(available)}): install onnxruntime-gpu")
    else:
        why = (f"{GPU_PROVIDER} did not start (no GPU visible, or the CUDA/cuDNN libraries or the NVIDIA driver "
               "do not load: see the messages above)")
    return f"model {model.name} asks for a GPU, but ONNX Runtime would run it on the CPU: {why}"


class Handler(BaseHTTPRequestHandler):
    registry: Registry
    protocol_version = "HTTP/1.1"
    server_version = f"{SERVER_NAME}/{SERVER_VERSION}"

    def log_message(self, fmt: str, *args) -> None:  # one line per request on stderr
        sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _model(self, name: str, version: str | None) -> Model:
        model = self.registry.models.get(name)
        if model is None:
            if name in self.registry.errors:
                raise RequestError(503, f"model '{name}' failed to load: {self.registry.errors[name]}")
            raise RequestError(404, f"no model named '{name}'")
        if version is not None and version != model.version:
            raise RequestError(404, f"model '{name}' has no version '{version}' (versions: {model.version})")
        return model

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        try:
            path = self.path.split("?", 1)[0]
            if path == "/v2/health/live":
                return self._send(200, {"live": True})
            if path == "/v2/health/ready":
                return self._send(200 if self.registry.ready else 503, {"ready": self.registry.ready})
            if path in ("/v2", "/v2/"):
                return self._send(200, {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []})
            match = _ROUTE.match(path)
            if not match or match.group(3) == "/infer":
                raise RequestError(404, f"no such endpoint: GET {path}")
            model = self._model(match.group(1), match.group(2))
            if match.group(3) == "/ready":
                return self._send(200, {"name": model.name, "ready": True})
            return self._send(200, model.metadata())
        except RequestError as exc:
            self._send(exc.status, {"error": str(exc)})

    def do_POST(self) -> None:  # noqa: N802
        try:
            path = self.path.split("?", 1)[0]
            match = _ROUTE.match(path)
            if not match or match.group(3) != "/infer":
                raise RequestError(404, f"no such endpoint: POST {path}")
            model = self._model(match.group(1), match.group(2))
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                raise RequestError(400 if length <= 0 else 413, "request body missing or too large")
            try:
                request = json.loads(self.rfile.read(length))
            except ValueError as exc:
                raise RequestError(400, f"request body is not JSON: {exc}") from None
            self._send(200, model.infer(request))
        except RequestError as exc:
            self._send(exc.status, {"error": str(exc)})
        except Exception as exc:  # never drop the connection without an answer
            self._send(500, {"error": f"{type(exc).__name__}: {exc}"})


def make_server(config: dict, host: str = "127.0.0.1", port: int = 8000,
                registry: Registry | None = None) -> ThreadingHTTPServer:
    if registry is None:
        registry = Registry()
        registry.load(config)
    handler = type("BoundHandler", (Handler,), {"registry": registry})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.registry = registry
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--pidfile")
    parser.add_argument("--check", action="store_true",
                        help="load the models, say where each runs (GPU or CPU) and exit: 3 when one that asks "
                             "for a GPU would run on the CPU")
    args = parser.parse_args(argv)
    with open(args.config) as fh:
        config = json.load(fh)
    registry = Registry()
    registry.load(config)
    for message in registry.no_gpu.values():
        print(f"{SERVER_NAME}: error: {message}", file=sys.stderr, flush=True)
    if registry.no_gpu:  # never serve a GPU model on the CPU without saying so: stop here
        return EXIT_NO_GPU
    if args.check:
        return 0
    server = make_server(config, args.host, args.port, registry)
    if args.pidfile:
        tmp = f"{args.pidfile}.tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        os.replace(tmp, args.pidfile)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"{SERVER_NAME}: serving {', '.join(config_names(config)) or 'no models'} on {args.host}:{args.port}",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if args.pidfile and os.path.exists(args.pidfile):
            os.unlink(args.pidfile)
    return 0


def config_names(config: dict) -> list[str]:
    return [m.get("name", "?") for m in config.get("models", [])]


if __name__ == "__main__":
    sys.exit(main())
