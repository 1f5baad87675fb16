"""The whole benchmark: options in, one JSON-ready dict out (``tools/benchmark.py`` is the CLI).

Both models are built once with random weights on the same device and timed on the same image in
the same process, alternately within each run (``measure_alternating``). For each persons value P
both are forced to run their keypoint stage on exactly P persons (``forcing.py``), checked before
timing. Training steps run last, one subprocess per model, after the inference models are released.
"""
import gc
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from .flops import RATE_CONV_SHAPE, conv_rate, floor_ms, inspose_flops, inspose_gmac
from .flops import keypoint_rcnn_flops, keypoint_rcnn_gmac
from .inputs import benchmark_image, inference_input
from .inspose_latency import build_inspose, inspose_breakdown
from .inspose_latency import run_forced as run_inspose_forced
from .keypoint_rcnn import KEYPOINT_RCNN_CONFIG, build_keypoint_rcnn
from .keypoint_rcnn import run_forced as run_rcnn_forced
from .export_latency import export_comparison
from .kpnet_table import kpnet_comparison
from .timing import describe_device, measure_alternating
from .training import training_in_subprocess, training_spec

__all__ = ["BenchmarkOptions", "run_benchmark", "COLUMNS", "ROW_KEYS"]

COLUMNS = {
    "persons": "P, the number of persons forced to reach each model's keypoint stage",
    "inspose_ms": "InsPose end-to-end inference, median ms (model([input]), batch 1, warm)",
    "inspose_spread_ms": "inter-quartile range (p75 - p25) of inspose_ms over the runs",
    "keypoint_rcnn_ms": "detectron2 Keypoint R-CNN R-50-FPN end-to-end inference, median ms",
    "keypoint_rcnn_spread_ms": "inter-quartile range of keypoint_rcnn_ms",
    "ratio": "inspose_ms / keypoint_rcnn_ms (below 1: InsPose is faster)",
    "backbone_ms": "InsPose backbone + FPN (P3-P7), median ms of the instrumented forwards",
    "heads_ms": "InsPose towers, classification, controller and P3 branches",
    "kpnet_ms": "InsPose KP-Nets on the P candidates (chunked, argmax and confidence fused in)",
    "decode_nms_ms": "InsPose candidate selection, parameter gathering, offsets, decoding, NMS",
    "other_ms": "InsPose preprocessing, location grid, score sigmoid, rescaling",
    "flop_floor_ms": "InsPose MACs x 2 / the device's measured conv rate: the time at that rate",
    "keypoint_rcnn_flop_floor_ms": "the same for Keypoint R-CNN",
    "inspose_gmac": "InsPose MACs (G) at P persons (fvcore + analytic KP-Nets)",
    "keypoint_rcnn_gmac": "Keypoint R-CNN MACs (G) at P persons (fvcore)",
}
ROW_KEYS = tuple(COLUMNS) + (
    "inspose_min_ms", "inspose_max_ms", "keypoint_rcnn_min_ms", "keypoint_rcnn_max_ms",
    "instrumented_total_ms", "inspose_kpnets_checked", "keypoint_rcnn_boxes_checked",
)  # fmt: skip


@dataclass
class BenchmarkOptions:
    """What ``tools/benchmark.py`` measures (its command-line options, same names)."""

    config_file: str
    keypoint_rcnn_config: str = KEYPOINT_RCNN_CONFIG
    opts: List[str] = field(default_factory=list)  # InsPose config overrides
    device: str = "cpu"
    persons: List[int] = field(default_factory=lambda: [1, 10, 50, 100])
    runs: int = 10
    warmup: int = 2
    size: Tuple[int, int] = (800, 1333)
    threads: int = 0  # 0: leave torch's default
    kpnet_instances: List[int] = field(default_factory=lambda: [10, 100, 500])
    train_batch: int = 2
    train_persons: int = 5  # synthetic persons per training image
    rate_shape: Tuple[int, int, int, int] = RATE_CONV_SHAPE
    skip_train: bool = False
    skip_flops: bool = False
    skip_kpnet: bool = False
    export: bool = False  # also time the exported model (ONNX Runtime, torch.export); CPU only


def _latency_row(models, inputs, persons: int, o: BenchmarkOptions, device) -> Dict:
    inspose, rcnn = models
    run_inspose_forced(inspose, inputs, persons)  # raise unless P persons reach the keypoint stage
    run_rcnn_forced(rcnn, inputs, persons)
    with torch.no_grad():
        timings = measure_alternating(
            {"inspose": lambda: inspose([inputs]), "keypoint_rcnn": lambda: rcnn([inputs])},
            device, o.runs, o.warmup,
        )  # fmt: skip
    ins, krc = timings["inspose"], timings["keypoint_rcnn"]
    stages = inspose_breakdown(inspose, inputs, persons, o.runs, o.warmup, device)
    row = {
        "persons": persons,
        "inspose_ms": ins.median_ms,
        "inspose_spread_ms": ins.spread_ms,
        "inspose_min_ms": ins.min_ms,
        "inspose_max_ms": ins.max_ms,
        "keypoint_rcnn_ms": krc.median_ms,
        "keypoint_rcnn_spread_ms": krc.spread_ms,
        "keypoint_rcnn_min_ms": krc.min_ms,
        "keypoint_rcnn_max_ms": krc.max_ms,
        "ratio": ins.median_ms / krc.median_ms,
        "inspose_kpnets_checked": persons,  # run_inspose_forced raises otherwise
        "keypoint_rcnn_boxes_checked": persons,  # run_rcnn_forced raises otherwise
    }
    row.update({name: timing.median_ms for name, timing in stages.items()})
    return row


def _add_floors(row: Dict, flops: Optional[Dict]) -> None:
    keys = ("flop_floor_ms", "keypoint_rcnn_flop_floor_ms", "inspose_gmac", "keypoint_rcnn_gmac")
    if flops is None:
        row.update(dict.fromkeys(keys))
        return
    rate, persons = flops["rate"]["gflops_per_s"], row["persons"]
    row["inspose_gmac"] = inspose_gmac(flops["inspose"], persons)
    row["keypoint_rcnn_gmac"] = keypoint_rcnn_gmac(flops["keypoint_rcnn"], persons)
    row["flop_floor_ms"] = floor_ms(row["inspose_gmac"], rate)
    row["keypoint_rcnn_flop_floor_ms"] = floor_ms(row["keypoint_rcnn_gmac"], rate)


def _inference_sections(o: BenchmarkOptions, device: torch.device, models) -> Dict:
    if models is None:
        models = (build_inspose(o.config_file, o.opts, device)[0],
                  build_keypoint_rcnn(o.keypoint_rcnn_config, device)[0])  # fmt: skip
    inspose, rcnn = models
    image = benchmark_image(tuple(o.size))
    sections: Dict = {"flops": None, "kpnet": None}
    if not o.skip_flops:
        sections["flops"] = {
            "rate": conv_rate(device, tuple(o.rate_shape), runs=max(1, min(o.runs, 5)), warmup=1),
            "inspose": inspose_flops(inspose, tuple(o.size)),
            "keypoint_rcnn": keypoint_rcnn_flops(rcnn, tuple(o.size)),
        }
    rows = []
    for persons in o.persons:
        row = _latency_row((inspose, rcnn), inference_input(image), persons, o, device)
        _add_floors(row, sections["flops"])
        rows.append(row)
    sections["rows"] = rows
    if o.export:
        if device.type != "cpu":
            raise RuntimeError("--export compares with ONNX Runtime's CPU provider: use --device cpu")
        sections["export"] = export_comparison(
            inspose, inference_input(image), o.persons, o.runs, o.warmup, o.threads
        )
    if not o.skip_kpnet:
        sections["kpnet"] = kpnet_comparison(
            inspose, image, o.kpnet_instances, o.runs, o.warmup, device
        )
    return sections


def _training_section(o: BenchmarkOptions) -> Dict:
    common = dict(device=o.device, size=tuple(o.size), batch=o.train_batch, persons=o.train_persons,
                  runs=o.runs, warmup=1, threads=o.threads)  # fmt: skip
    return {
        "inspose": training_in_subprocess(
            training_spec("inspose", o.config_file, o.opts, **common)
        ),
        "keypoint_rcnn": training_in_subprocess(
            training_spec("keypoint_rcnn", o.keypoint_rcnn_config, [], **common)
        ),
    }


def run_benchmark(
    o: BenchmarkOptions, models: Optional[Tuple[nn.Module, nn.Module]] = None
) -> Dict:
    """The report: device, settings, columns, rows (one per persons value), kpnet, training, flops.

    Args:
        models: (InsPose, Keypoint R-CNN) already built on ``o.device`` (tests), else built from
            ``o.config_file`` and ``o.keypoint_rcnn_config`` with random weights.
    """
    if o.threads > 0:
        torch.set_num_threads(o.threads)
    device = torch.device(o.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    report = {"device": describe_device(device), "settings": asdict(o), "columns": COLUMNS}
    report.update(_inference_sections(o, device, models))
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    report["training"] = None if o.skip_train else _training_section(o)
    return report


def parse_ints(text: str) -> List[int]:
    """ "1,10,50" -> [1, 10, 50]."""
    return [int(v) for v in text.replace(" ", "").split(",") if v]

