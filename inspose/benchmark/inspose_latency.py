"""InsPose at batch 1: building it with random weights, forcing P persons, the stage breakdown.

The breakdown instruments one ordinary forward (``model([input])``) by wrapping, on this model
instance only, the methods that form its stages, each bracketed by device synchronisation:

- ``backbone_ms``: ``model.backbone`` (ResNet + FPN, P3-P7);
- ``heads_ms``: the rest of ``predict_maps``: classification and controller towers on every
  level, the classification and controller convs, the keypoint-feature and disk-offset branches on
  P3 (and their resampling when OUTPUT_STRIDE is not 8);
- ``kpnet_ms``: ``predictor.run_kpnets``: the P KP-Nets, chunked, with each chunk's argmax and
  keypoint confidence fused in;
- ``decode_nms_ms``: the rest of ``predictor.predict_image``: candidate selection (threshold,
  top-k), gathering the controller outputs, offsets and decoding, boxes, NMS;
- ``other_ms``: what the forward does outside those (normalising and padding the image, the
  location grid, the sigmoid of the scores, rescaling to the output size).
Synchronising inside the forward costs a little on CUDA, so the end-to-end latency is measured on
uninstrumented forwards.
"""
from contextlib import ExitStack
from typing import Dict, List, Optional, Sequence

import torch
from detectron2.modeling import build_model
from torch import nn

from ..config import load_config
from .forcing import check_count, count_inspose_kpnets, force_inspose_persons, kpnets_run
from .timing import StageClock, Timing, replace_method, summarize, time_call

__all__ = ["build_inspose", "run_forced", "inspose_breakdown", "STAGES"]

STAGES = ("backbone_ms", "heads_ms", "kpnet_ms", "decode_nms_ms", "other_ms")


def build_inspose(config_file: str, opts: Sequence[str], device: torch.device, seed: int = 0):
    """(model in eval mode on ``device`` with random weights, its config)."""
    cfg = load_config(config_file, list(opts))
    cfg.MODEL.DEVICE = str(device)
    torch.manual_seed(seed)
    model = build_model(cfg)
    model.eval()
    return model, cfg


def run_forced(model: nn.Module, inputs: Dict, persons: int, candidates: Optional[int] = None) -> List:
    """One forward with ``persons`` forced out of ``candidates`` (default ``persons``); raises
    unless the KP-Nets ran on exactly ``kpnets_run`` instances and ``persons`` came out."""
    force_inspose_persons(model, persons, candidates)
    with torch.no_grad(), count_inspose_kpnets(model) as seen:
        outputs = model([inputs])
    check_count(seen, kpnets_run(model, persons, candidates), "InsPose KP-Nets")
    check_count([len(outputs[0]["instances"])], persons, "InsPose output instances")
    return outputs


def _instrumented_forward(model: nn.Module, inputs: Dict, device: torch.device) -> Dict[str, float]:
    """One forward with the stage methods wrapped; the stages' milliseconds."""
    clock = StageClock(device)
    with ExitStack() as stack:
        for owner, name in (
            (model.backbone, "forward"),
            (model, "predict_maps"),
            (model.predictor, "predict_image"),
            (model.predictor, "run_kpnets"),
        ):
            stack.enter_context(replace_method(owner, name, lambda fn, n=name: clock.timed(n, fn)))
        with torch.no_grad():
            total = time_call(lambda: model([inputs]), device)
    t = clock.totals_ms
    return {
        "backbone_ms": t["forward"],
        "heads_ms": t["predict_maps"] - t["forward"],
        "kpnet_ms": t["run_kpnets"],
        "decode_nms_ms": t["predict_image"] - t["run_kpnets"],
        "other_ms": total - t["predict_maps"] - t["predict_image"],
        "instrumented_total_ms": total,
    }


def inspose_breakdown(
    model: nn.Module, inputs: Dict, persons: int, runs: int, warmup: int, device: torch.device
) -> Dict[str, Timing]:
    """Per stage (``STAGES`` + instrumented_total_ms), the summary over ``runs`` forwards."""
    run_forced(model, inputs, persons)
    for _ in range(warmup):
        _instrumented_forward(model, inputs, device)
    samples = [_instrumented_forward(model, inputs, device) for _ in range(max(1, runs))]
    return {k: summarize([s[k] for s in samples]) for k in samples[0]}
