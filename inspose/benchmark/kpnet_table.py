"""The batched KP-Nets (``kpnet_forward``) against the per-instance loop (``kpnet_reference``).

Inputs come from one real forward of the model (random weights) on the benchmark image: the
keypoint features F_kp (1, C_kp, H, W) at the output stride (the P3-sized map at OUTPUT_STRIDE 8)
and the controller's parameters at N locations drawn at random over all FPN levels (with
replacement, so N may exceed the number of locations). Three paths are timed in inference mode:

- ``loop_ms``: ``kpnet_reference``, one instance at a time, one ``conv2d`` per layer;
- ``batched_ms``: ``kpnet_forward``, all N at once, giving the (N, K, H * W) logits;
- ``predictor_ms``: ``InsPosePredictor.run_kpnets``, the inference path: chunks of at most
  KPNET_CHUNK_ELEMENTS map values, each reduced at once to its argmax cells and confidences.
``max_abs_diff`` compares the batched and loop logits; ``argmax_agreement`` is the fraction of
(instance, keypoint) cells where the predictor's argmax equals the loop's.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from ..modeling.codec import LevelLocations
from ..modeling.head_outputs import HeadOutputs
from ..modeling.kpnet import kpnet_forward, kpnet_reference
from ..modeling.level_maps import gather_locations
from .timing import measure

__all__ = ["head_maps", "kpnet_inputs", "kpnet_comparison"]


def head_maps(model: nn.Module, image: torch.Tensor) -> Tuple[HeadOutputs, LevelLocations]:
    """``predict_maps`` of one image and its FPN locations."""
    with torch.inference_mode():
        outputs = model.predict_maps(model.preprocess_image([{"image": image}]))
        locs = model.codec.locations(outputs.level_sizes, model.device)
    return outputs, locs


def kpnet_inputs(model: nn.Module, maps, instances: int, seed: int = 0) -> Dict:
    """Features, parameters and relative coordinates of ``instances`` KP-Nets of one image.

    Args:
        maps: ``head_maps`` of the image.
    Returns a dict with features (1, C_kp, H, W), image_index (N,), params (N, C_f),
    rel_x (N, W), rel_y (N, H).
    """
    outputs, locs = maps
    features = outputs.kp_features
    with torch.inference_mode():
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randint(0, locs.points.shape[0], (instances,), generator=generator)
        chosen = chosen.to(features.device)
        image_index = torch.zeros_like(chosen)
        params = gather_locations(outputs.params, image_index, chosen)
        rel_x, rel_y = model.codec.relative_coordinates(locs, chosen, outputs.map_size)
    return {
        "features": features,
        "image_index": image_index,
        "params": params,
        "rel_x": rel_x,
        "rel_y": rel_y,
    }


def _compare_one(model: nn.Module, x: Dict, runs: int, warmup: int, device) -> Dict:
    layout, predictor = model.predictor.layout, model.predictor
    args = (x["features"], x["image_index"], x["params"], layout, x["rel_x"], x["rel_y"])
    predictor_args = (x["features"], x["params"], x["rel_x"], x["rel_y"])
    with torch.inference_mode():
        loop = kpnet_reference(*args)
        batched = kpnet_forward(*args)
        cells, _ = predictor.run_kpnets(*predictor_args)
        row = {
            "instances": int(x["params"].shape[0]),
            "max_abs_diff": float((batched - loop).abs().max()) if loop.numel() else 0.0,
            "argmax_agreement": float((cells == loop.argmax(dim=2)).float().mean()),
        }
        del loop, batched
        timings = {
            "loop": measure(lambda: kpnet_reference(*args), device, runs, warmup),
            "batched": measure(lambda: kpnet_forward(*args), device, runs, warmup),
            "predictor": measure(
                lambda: predictor.run_kpnets(*predictor_args), device, runs, warmup
            ),
        }
    for name, timing in timings.items():
        row[f"{name}_ms"] = timing.median_ms
        row[f"{name}_spread_ms"] = timing.spread_ms
    row["loop_over_batched"] = row["loop_ms"] / max(row["batched_ms"], 1e-9)
    return row


def kpnet_comparison(
    model: nn.Module, image: torch.Tensor, counts: Sequence[int], runs: int, warmup: int, device
) -> Dict:
    """{"map_size": [H, W], "chunk_elements": ..., "rows": one dict per instance count}."""
    maps = head_maps(model, image)
    rows: List[Dict] = []
    for count in counts:
        rows.append(_compare_one(model, kpnet_inputs(model, maps, count), runs, warmup, device))
    return {
        "map_size": list(maps[0].map_size),
        "chunk_elements": model.predictor.chunk_elements,
        "keypoint_score": model.predictor.keypoint_score,
        "rows": rows,
    }
