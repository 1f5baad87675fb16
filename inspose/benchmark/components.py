"""What each of the authors' release components costs at inference: parameters, MACs, latency.

``tools/benchmark.py --components`` builds the given config (the paper's model) once per entry of
``RELEASE_COMPONENTS`` with that entry's overrides added, random weights, and measures on one
image of ``--size``:

- parameters in the model at inference (the training-only heatmap branch left out; with its
  offsets decoded, HEATMAP_OFFSETS_ON, its trunk and offsets head count) and the difference from
  the first row;
- MACs of the maps (backbone, FPN, heads; fvcore, deformable convs counted by
  ``deform_conv_macs``) plus the KP-Nets the model runs (analytic): P = ``--persons``' first
  value, or with ``--candidates N`` (N > P candidates reach NMS, P detections come out) N KP-Nets
  before NMS and P after it (KPNETS_AFTER_NMS), the only setting that shows that order's saving;
- end-to-end latency (median of ``--runs`` forwards, batch 1) with exactly those counts forced
  (``forcing.py``; the forced settings replace the component's NMS threshold and per-level top-k,
  so soft-NMS is timed on the N candidates, keeping every one).

Models are timed in turn within each run (``measure_alternating``), so machine drift reaches all.
Training-only components (Varifocal targets, the KP-Net loss normaliser, associative-embedding tags)
cost nothing here and are not listed.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .flops import inspose_flops, inspose_gmac
from .forcing import kpnets_run
from .inputs import benchmark_image, inference_input
from .inspose_latency import build_inspose, run_forced
from .timing import measure_alternating

__all__ = ["RELEASE_COMPONENTS", "component_rows", "COMPONENT_HEADERS"]

_REGRESSION = ["MODEL.INSPOSE.KEYPOINT_REGRESSION_ON", "True"]
_REGRESSION_NMS = _REGRESSION + ["MODEL.INSPOSE.NMS_BOXES", "regression"]
_STRIDE4_OFFSETS = [
    "MODEL.INSPOSE.HEATMAP_STRIDE", "4", "MODEL.INSPOSE.HEATMAP_RADIUS_MODE", "adaptive",
    "MODEL.INSPOSE.HEATMAP_OFFSETS_ON", "True", "MODEL.INSPOSE.HEATMAP_CHANNELS", "512",
]  # fmt: skip  (the release's 2 x 512 on P3, x2, 1 x 512)
_BICUBIC = ["MODEL.INSPOSE.KPNET_UPSAMPLE_FACTOR", "2"]

# (name, overrides added to the benchmarked config): each release component alone, then all.
RELEASE_COMPONENTS: List[Tuple[str, List[str]]] = [
    ("paper model", []),
    ("keypoint regression, NMS on its boxes", _REGRESSION_NMS),
    ("star deformable convs (+ regression)", _REGRESSION + ["MODEL.INSPOSE.STAR_DEFORM_ON", "True"]),
    ("KP-Nets after NMS (+ regression)", _REGRESSION_NMS + [
        "MODEL.INSPOSE.KPNETS_AFTER_NMS", "True", "MODEL.INSPOSE.INSTANCE_SCORE", "cls"]),
    ("3x3 GN ending of the keypoint features", ["MODEL.INSPOSE.KP_FEATURE_LAST_CONV", "conv3x3_gn_relu"]),
    ("stride-4 heatmap / offset branch + bicubic x2", _STRIDE4_OFFSETS + _BICUBIC),
    ("soft-NMS (linear) + top 1000 per level", [
        "MODEL.INSPOSE.NMS_TYPE", "soft_linear", "MODEL.INSPOSE.PRE_NMS_TOPK_PER_LEVEL", "1000"]),
    ("all release components", _REGRESSION_NMS + _STRIDE4_OFFSETS + _BICUBIC + [
        "MODEL.INSPOSE.STAR_DEFORM_ON", "True", "MODEL.INSPOSE.KPNETS_AFTER_NMS", "True",
        "MODEL.INSPOSE.INSTANCE_SCORE", "cls", "MODEL.INSPOSE.KP_FEATURE_LAST_CONV", "conv3x3_gn_relu",
        "MODEL.INSPOSE.NMS_TYPE", "soft_linear", "MODEL.INSPOSE.PRE_NMS_TOPK_PER_LEVEL", "1000"]),
]  # fmt: skip

COMPONENT_HEADERS = [
    "component", "params at inference (M)", "vs first (M)", "KP-Nets run", "GMAC", "vs first (GMAC)",
    "ms", "ms spread", "vs first (ms)",
]  # fmt: skip


def _inference_params(model) -> int:
    """Parameters used at inference: all but a heatmap branch that runs only in training."""
    skip = ()
    if model.heatmap_branch is not None:  # at test only its trunk and offsets (HEATMAP_OFFSETS_ON)
        at_test = ("heatmap_branch.predict.", "heatmap_branch.tags.")
        skip = at_test if model.heatmap_at_test else ("heatmap_branch.",)
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(skip))


def component_rows(
    config_file: str,
    base_opts: Sequence[str],
    components: Sequence[Tuple[str, Sequence[str]]],
    device: torch.device,
    size: Tuple[int, int],
    persons: int,
    runs: int,
    warmup: int,
    candidates: Optional[int] = None,
) -> List[Dict]:
    """One dict per component: name, params, KP-Nets run, gmac, latency median / spread (ms),
    differences; ``candidates`` (default ``persons``) reach NMS, ``persons`` come out."""
    image = inference_input(benchmark_image(tuple(size)))
    models, rows = {}, []
    for name, opts in components:
        model = build_inspose(config_file, list(base_opts) + list(opts), device)[0]
        run_forced(model, image, persons, candidates)  # raises unless the forced counts hold
        flops = inspose_flops(model, tuple(size))
        kpnets = kpnets_run(model, persons, candidates)
        rows.append({"component": name, "params_m": _inference_params(model) / 1e6, "kpnets": kpnets,
                     "gmac": inspose_gmac(flops, kpnets), "opts": list(opts)})  # fmt: skip
        models[name] = model
    with torch.no_grad():
        calls = {name: (lambda m=m: m([image])) for name, m in models.items()}
        timings = measure_alternating(calls, device, runs, warmup)
    first = rows[0]
    for row in rows:
        timing = timings[row["component"]]
        row.update(ms=timing.median_ms, spread_ms=timing.spread_ms)
        row.update(
            params_vs_first_m=row["params_m"] - first["params_m"],
            gmac_vs_first=row["gmac"] - first["gmac"],
        )
    for row in rows:
        row["ms_vs_first"] = row["ms"] - first["ms"]
    return rows


def component_table_rows(rows: Sequence[Dict]) -> List[List]:
    """``component_rows`` as rows of ``COMPONENT_HEADERS``."""
    return [
        [r["component"], r["params_m"], r["params_vs_first_m"], r["kpnets"], r["gmac"], r["gmac_vs_first"],
         r["ms"], r["spread_ms"], r["ms_vs_first"]]
        for r in rows
    ]  # fmt: skip
