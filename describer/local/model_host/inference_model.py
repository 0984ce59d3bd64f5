"""The endpoint's inference code as the SageMaker Hugging Face toolkit runs it, in the model host's process.

``InferenceModel`` loads the real ``inference.py`` shipped in ``<model dir>/code/`` (``model_fn``,
``input_fn``, ``predict_fn``, ``output_fn``); its ``EndpointRequestError`` becomes ``ModelClientError``,
which the host answers as SageMaker answers a container's 4xx.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from describer_core.endpoint_errors import EndpointRequestError


class ModelClientError(Exception):
    """The model rejected the request: it names the HTTP status the container answered with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class InferenceModel:
    """The endpoint's inference code, loaded from ``<model dir>/code/`` as the container loads it."""

    def __init__(self, model_dir: Path) -> None:
        code_dir = model_dir / "code"
        script = code_dir / "inference.py"
        if not script.is_file():
            raise FileNotFoundError(f"{script} not found: build the demo model first (make demo-model)")
        sys.path.insert(0, str(code_dir))
        spec = importlib.util.spec_from_file_location("inference", script)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {script}")
        self.module: ModuleType = importlib.util.module_from_spec(spec)
        sys.modules["inference"] = self.module
        spec.loader.exec_module(self.module)
        model_fn = self.module.model_fn
        # The Hugging Face toolkit passes a context as well when model_fn takes a second argument.
        takes_context = len(inspect.signature(model_fn).parameters) > 1
        self.model = model_fn(str(model_dir), None) if takes_context else model_fn(str(model_dir))

    @classmethod
    def of(cls, module: ModuleType, model: Any) -> InferenceModel:
        """``module``'s toolkit functions over an already loaded ``model`` (the benchmark's models)."""
        instance = cls.__new__(cls)
        instance.module, instance.model = module, model
        return instance

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """Run input_fn -> predict_fn -> output_fn; raises ModelClientError for a rejected payload.

        Called from every request thread at once: one model in one process, as one model server
        worker with concurrent requests; ``inference.py`` batches them (``training/serving/batching.py``).
        """
        try:
            data = self.module.input_fn(body, content_type)
            prediction = self.module.predict_fn(data, self.model)
            output = self.module.output_fn(prediction, accept)
        except EndpointRequestError as error:
            raise ModelClientError(error.status, str(error)) from error
        return (output.encode() if isinstance(output, str) else bytes(output)), accept
