"""Exported InsPose against PyTorch eager: latency per persons value, export time and file size.

For each P the model is forced to P persons (``forcing.py``: threshold below 0, top-k P, no NMS
suppression, P detections), then ``InsPoseInference`` of it is exported with ``torch.export`` at
the benchmark's input size and translated to ONNX. Three paths are timed alternately on the same
image: PyTorch eager (``model([input])``, banded KP-Nets), ONNX Runtime (CPU provider, the same
thread count) and the ``torch.export`` program. Each must return exactly P detections.
"""
import os
import tempfile
import time
from typing import Dict, List, Sequence

import torch
from torch import nn

from ..deploy.export import DEFAULT_OPSET, export_program, save_onnx
from .forcing import check_count, force_inspose_persons
from .timing import measure_alternating

__all__ = ["export_comparison"]


def _onnx_session(path: str, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: not its notes on nodes it cannot fold
    if threads > 0:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _export_row(model: nn.Module, inputs: Dict, persons: int, runs: int, warmup: int, threads: int, folder: str):
    force_inspose_persons(model, persons)
    size = tuple(inputs["image"].shape[-2:])
    image = inputs["image"].float()
    original = torch.tensor([float(inputs["height"]), float(inputs["width"])])
    start = time.perf_counter()
    program = export_program(model, size)
    torch_export_s = time.perf_counter() - start
    path = os.path.join(folder, f"inspose_p{persons}.onnx")
    save_onnx(program, path, {"benchmark": True}, DEFAULT_OPSET)
    onnx_s = time.perf_counter() - start
    session = _onnx_session(path, threads)
    feeds = {"image": image.numpy(), "original_size": original.numpy()}
    exported = program.module()
    check_count([int(session.run(None, feeds)[3])], persons, "ONNX Runtime detections")
    with torch.no_grad():
        check_count([int(exported(image, original)[3])], persons, "torch.export detections")
        timings = measure_alternating(
            {
                "eager": lambda: model([inputs]),
                "onnxruntime": lambda: session.run(None, feeds),
                "torch_export": lambda: exported(image, original),
            },
            torch.device("cpu"), runs, warmup,
        )  # fmt: skip
    eager = timings["eager"].median_ms
    return {
        "persons": persons,
        "eager_ms": eager,
        "onnxruntime_ms": timings["onnxruntime"].median_ms,
        "torch_export_ms": timings["torch_export"].median_ms,
        "onnxruntime_over_eager": timings["onnxruntime"].median_ms / eager,
        "torch_export_over_eager": timings["torch_export"].median_ms / eager,
        "torch_export_s": torch_export_s,
        "onnx_export_s": onnx_s,
        "onnx_mb": os.path.getsize(path) / 2**20,
    }


def export_comparison(
    model: nn.Module, inputs: Dict, persons: Sequence[int], runs: int, warmup: int, threads: int
) -> Dict:
    """{"rows": one dict per persons value} (CPU only: ONNX Runtime runs on the CPU provider)."""
    rows: List[Dict] = []
    with tempfile.TemporaryDirectory() as folder:
        for p in persons:
            rows.append(_export_row(model, inputs, p, runs, warmup, threads, folder))
    return {"rows": rows, "opset": DEFAULT_OPSET}
