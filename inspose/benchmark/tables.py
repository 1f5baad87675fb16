"""Markdown tables of a benchmark report (the dict ``runner.run_benchmark`` returns)."""
from typing import Dict, List, Optional, Sequence

__all__ = ["markdown_table", "render_report"]

LATENCY_HEADERS = [
    "persons", "InsPose ms", "Keypoint R-CNN ms", "ratio", "backbone+FPN ms", "heads ms",
    "KP-Nets ms", "decode+NMS ms", "other ms", "InsPose floor ms", "KRCNN floor ms",
]  # fmt: skip
LATENCY_KEYS = [
    "ratio", "backbone_ms", "heads_ms", "kpnet_ms", "decode_nms_ms", "other_ms",
    "flop_floor_ms", "keypoint_rcnn_flop_floor_ms",
]  # fmt: skip
KPNET_HEADERS = [
    "instances", "loop ms", "batched ms", "predictor (chunked + argmax) ms", "loop / batched",
    "max abs diff", "argmax agreement",
]  # fmt: skip


def _cell(value) -> str:
    """Floats to 3 significant digits, without exponent from 10 up; None as "-"."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:.0f}"
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub markdown table; floats to 3 significant digits (integers above 1000), None as -."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _with_spread(median: Optional[float], spread: Optional[float]) -> str:
    """ "median ± half the inter-quartile range"."""
    if median is None:
        return "-"
    return f"{_cell(median)} ± {_cell(spread / 2)}" if spread is not None else _cell(median)


def latency_table(rows: List[Dict]) -> str:
    body = []
    for r in rows:
        inspose = _with_spread(r["inspose_ms"], r["inspose_spread_ms"])
        rcnn = _with_spread(r["keypoint_rcnn_ms"], r["keypoint_rcnn_spread_ms"])
        body.append([r["persons"], inspose, rcnn] + [r[k] for k in LATENCY_KEYS])
    return markdown_table(LATENCY_HEADERS, body)


def kpnet_table(section: Dict) -> str:
    keys = ["instances", "loop_ms", "batched_ms", "predictor_ms", "loop_over_batched"]
    body = [
        [r[k] for k in keys] + [f"{r['max_abs_diff']:.1e}", r["argmax_agreement"]]
        for r in section["rows"]
    ]
    return markdown_table(KPNET_HEADERS, body)


def training_table(section: Dict) -> str:
    headers = ["model", "step ms", "peak memory MB", "memory measured as", "losses"]
    body = []
    for name, result in section.items():
        if "error" in result:
            body.append([name, "error", "-", result["error"], "-"])
            continue
        losses = ", ".join(f"{k} {v:.3g}" for k, v in sorted(result["losses"].items()))
        step = _with_spread(result["step_ms"], result["step_spread_ms"])
        body.append([name, step, result["peak_memory_mb"], result["memory_kind"], losses])
    return markdown_table(headers, body)


def flops_table(section: Dict) -> str:
    ins, rcnn, rate = section["inspose"], section["keypoint_rcnn"], section["rate"]
    kpnet_params = f"{ins['kpnet_params_per_instance']} generated"
    body = [
        ["InsPose", "backbone + FPN", ins["params_backbone_fpn"] / 1e6, ins["gmac_backbone_fpn"]],
        ["InsPose", "heads", ins["params_heads"] / 1e6, ins["gmac_heads"]],
        ["InsPose", "KP-Net per instance (analytic)", kpnet_params, ins["gmac_kpnet_per_instance"]],
        ["Keypoint R-CNN", "backbone + FPN", rcnn["params_backbone_fpn"] / 1e6,
         rcnn["gmac_backbone_fpn"]],
        ["Keypoint R-CNN", "RPN", rcnn["params_rpn"] / 1e6, rcnn["gmac_rpn"]],
        ["Keypoint R-CNN", "box head", rcnn["params_box_head"] / 1e6, rcnn["gmac_box_head"]],
        ["Keypoint R-CNN", "keypoint head per instance", rcnn["params_keypoint_head"] / 1e6,
         rcnn["gmac_keypoint_head_per_instance"]],
    ]  # fmt: skip
    shape = "x".join(map(str, rate["shape"]))
    note = (
        f"Rate: {rate['gflops_per_s']:.1f} GFLOP/s on a {shape} 3x3 conv; floor = 2 x MACs / rate. "
        "KP-Net MACs are analytic (out x in x H x W per layer)."
    )
    return markdown_table(["model", "part", "params (M)", "GMAC"], body) + "\n\n" + note


EXPORT_HEADERS = [
    "persons", "PyTorch eager ms", "ONNX Runtime ms", "torch.export ms", "ORT / eager",
    "torch.export / eager", "export s (torch.export + ONNX)", "ONNX MB",
]  # fmt: skip


def export_table(section: Dict) -> str:
    keys = ["persons", "eager_ms", "onnxruntime_ms", "torch_export_ms", "onnxruntime_over_eager",
            "torch_export_over_eager", "onnx_export_s", "onnx_mb"]  # fmt: skip
    return markdown_table(EXPORT_HEADERS, [[r[k] for k in keys] for r in section["rows"]])


def render_report(report: Dict) -> str:
    """Every section of the report present, as markdown with headings."""
    device, settings = report["device"], report["settings"]
    height, width = settings["size"]
    parts = [
        f"Device: {device['name']} | torch {device['torch']} | detectron2 {device['detectron2']}",
        f"Input {height}x{width}, batch 1, median over {settings['runs']} runs "
        "(± half the inter-quartile range)",
        "",
        "## Inference latency",
        latency_table(report["rows"]),
    ]
    if report.get("export"):
        parts += ["", "## Exported model (CPU)", export_table(report["export"])]
    if report.get("kpnet"):
        size = "x".join(map(str, report["kpnet"]["map_size"]))
        heading = f"## KP-Nets on the {size} map: batched vs per-instance loop"
        parts += ["", heading, kpnet_table(report["kpnet"])]
    if report.get("training"):
        parts += ["", "## Training step (batch 2)", training_table(report["training"])]
    if report.get("flops"):
        parts += ["", "## Parameters and MACs", flops_table(report["flops"])]
    return "\n".join(parts) + "\n"
