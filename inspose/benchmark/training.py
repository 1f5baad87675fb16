"""One training step (forward, backward, SGD step) at batch 2 and its peak memory.

Each model is measured in its own subprocess (``python -m inspose.benchmark.training SPEC``), so
the peak memory is that model's alone: the peak resident set size from ``resource.getrusage``
on the CPU (it includes the Python process, torch, detectron2 and the model, so
``rss_after_build_mb``, the peak before the first step, is reported beside it), or
``torch.cuda.max_memory_allocated`` on CUDA (counted from after the model is built).

The optimizer is the project's ``build_optimizer`` for the model's config (detectron2's SGD with
momentum and weight decay; for InsPose with its full-model gradient clipping), with its learning
rate set to 0: the step performs all its arithmetic, but the weights keep their random initial
values, so every timed step sees the same model (a randomly initialised R-50 with FrozenBN
diverges within a few real steps, and detectron2's RPN then raises). Ground truth is synthetic
(``inputs.training_batch``), so every loss is a real loss with real targets. Both models are built
as for the inference benchmark (Keypoint R-CNN with its box-delta and heatmap output layers
zeroed, see ``keypoint_rcnn.py``, so that the RoI sampling sees anchor-shaped proposals).
"""
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Dict, Sequence, Tuple

import torch

__all__ = ["training_spec", "measure_training_step", "training_in_subprocess"]

RESULT_MARKER = "BENCHMARK_TRAINING_RESULT "


def training_spec(
    model: str,
    config_file: str,
    opts: Sequence[str],
    device: str,
    size: Tuple[int, int],
    batch: int,
    persons: int,
    runs: int,
    warmup: int,
    threads: int,
) -> Dict:
    """The JSON-serialisable description of one measurement (``model``: inspose | keypoint_rcnn)."""
    return {
        "model": model,
        "config_file": str(Path(config_file).resolve()),
        "opts": list(opts),
        "device": device,
        "size": list(size),
        "batch": batch,
        "persons": persons,
        "runs": runs,
        "warmup": warmup,
        "threads": threads,
    }


def _build(spec: Dict):
    """(model in training mode, config), built as for the inference benchmark."""
    device = torch.device(spec["device"])
    if spec["model"] == "inspose":
        from .inspose_latency import build_inspose

        model, cfg = build_inspose(spec["config_file"], spec["opts"], device)
    else:
        from .keypoint_rcnn import build_keypoint_rcnn

        model, cfg = build_keypoint_rcnn(spec["config_file"], device, spec["opts"])
    model.train()
    return model, cfg


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def measure_training_step(spec: Dict) -> Dict:
    """Time ``spec["runs"]`` training steps after ``spec["warmup"]``; peak memory and losses."""
    from detectron2.utils.events import EventStorage

    from ..engine.optimizer import build_optimizer
    from .inputs import training_batch
    from .timing import measure

    if spec["threads"] > 0:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    model, cfg = _build(spec)
    optimizer = build_optimizer(cfg, model)
    for group in optimizer.param_groups:
        group["lr"] = 0.0
    num_keypoints = cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
    if spec["model"] == "inspose":
        num_keypoints = cfg.MODEL.INSPOSE.NUM_KEYPOINTS
    batch = training_batch(tuple(spec["size"]), spec["batch"], spec["persons"], num_keypoints)
    losses_seen: Dict[str, float] = {}

    def step():
        losses = model(batch)
        total = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        losses_seen.update({k: float(v.detach()) for k, v in losses.items()})

    rss_after_build = _peak_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with EventStorage():
        timing = measure(step, device, spec["runs"], spec["warmup"])
    result = {
        "step_ms": timing.median_ms,
        "step_spread_ms": timing.spread_ms,
        "timing": timing.as_dict(),
        "losses": losses_seen,
        "params": sum(p.numel() for p in model.parameters()),
        "batch": spec["batch"],
        "persons_per_image": spec["persons"],
        "size": spec["size"],
    }
    if device.type == "cuda":
        result["memory_kind"] = "torch.cuda.max_memory_allocated"
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        result["memory_kind"] = "peak RSS (resource.getrusage ru_maxrss)"
        result["peak_memory_mb"] = _peak_rss_mb()
        result["rss_after_build_mb"] = rss_after_build
    return result


def training_in_subprocess(spec: Dict, timeout_s: float = 3600.0) -> Dict:
    """Run ``measure_training_step(spec)`` in a fresh Python process; its result or an error."""
    repo_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "inspose.benchmark.training", json.dumps(spec)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=repo_root, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    return {"error": f"exit code {done.returncode}", "stderr_tail": done.stderr[-3000:]}


def main(argv: Sequence[str]) -> None:
    import inspose  # noqa: F401  (compat shim before detectron2)

    result = measure_training_step(json.loads(argv[0]))
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
