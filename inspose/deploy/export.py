"""Export a built InsPose to ONNX or ``torch.export``, with the metadata a runtime needs.

``export_model(cfg, model, fmt, output, ...)`` wraps the model in ``InsPoseInference`` (the whole
inference, KP-Nets included), exports it from an example image of ``size`` and writes the file with
its metadata (``export_metadata``): K, keypoint names, skeleton, flip pairs, OKS sigmas, the input
format and detectron2's test resize (``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``), so that
``inspose.deploy.runtime`` needs neither detectron2 nor this code. ONNX files keep it as the
``inspose`` entry of the model's metadata_props; ``torch.export`` archives as the extra file
``inspose.json``.

Options that cannot be exported are refused up front, naming the config key (``check_exportable``,
``check_opset``). The components of the authors' release all export: the keypoint-regression branch,
the star deformable convs (ONNX DeformConv, opset >= 19; ONNX Runtime runs it), NMS_BOXES
"regression" and KPNETS_AFTER_NMS (the graph runs the KP-Nets of NMS's survivors only).
"""
import json
import logging
from typing import Dict, List, Optional, Tuple

import torch
from detectron2.data import MetadataCatalog

from ..data import spec_from_metadata
from .graph import INPUT_NAMES, OUTPUT_NAMES, InsPoseInference
from .metadata import FORMAT_VERSION, METADATA_KEY, TORCH_EXPORT_EXTRA_FILE, check_metadata

__all__ = [
    "ExportError",
    "check_exportable",
    "check_opset",
    "convolution_weight_inputs",
    "example_inputs",
    "export_metadata",
    "export_model",
    "export_program",
    "load_torch_export",
    "save_onnx",
]

logger = logging.getLogger(__name__)
FORMATS = ("onnx", "torch_export")
DEFAULT_OPSET = 19  # the dynamo exporter's; the star convs' DeformConv (STAR_DEFORM_ON) needs >= 19


class ExportError(ValueError):
    """A config or request the exporter cannot honour; the message names the key or flag."""


def check_exportable(cfg, dynamic: bool) -> None:
    """Raise ``ExportError`` naming the first config option the exported graph cannot express."""
    if cfg.TEST.AUG.ENABLED:
        raise ExportError(
            "TEST.AUG.ENABLED True: test-time augmentation is not exported (it re-reads and "
            "resizes the original picture); export with TEST.AUG.ENABLED False"
        )
    stride = cfg.MODEL.INSPOSE.OUTPUT_STRIDE
    if dynamic and cfg.MODEL.INSPOSE.FPN_STRIDES[0] % stride != 0:
        raise ExportError(
            f"MODEL.INSPOSE.OUTPUT_STRIDE {stride} with --dynamic: the map size is rounded from "
            "P3's, which a graph with symbolic sizes cannot do; export at a fixed --size"
        )
    nms_type = cfg.MODEL.INSPOSE.NMS_TYPE
    if nms_type != "hard":
        raise ExportError(
            f"MODEL.INSPOSE.NMS_TYPE {nms_type!r}: the exported graph has hard NMS only (soft- and "
            "OKS-NMS stop on the data, which torch.export cannot trace); export with "
            "MODEL.INSPOSE.NMS_TYPE hard"
        )


def check_opset(cfg, fmt: str, opset: int) -> None:
    """Raise ``ExportError`` when the ONNX ``opset`` lacks an operator the config's graph needs:
    the star convs (STAR_DEFORM_ON) are ONNX DeformConv, which exists from opset 19."""
    if fmt == "onnx" and cfg.MODEL.INSPOSE.STAR_DEFORM_ON and opset < 19:
        raise ExportError(
            f"MODEL.INSPOSE.STAR_DEFORM_ON True with --opset {opset}: the star deformable convs "
            "are ONNX DeformConv, which needs opset >= 19"
        )


def _keypoint_spec(cfg):
    """The keypoint metadata of the config's datasets (test first), or None if none is registered."""
    for name in list(cfg.DATASETS.TEST) + list(cfg.DATASETS.TRAIN):
        metadata = MetadataCatalog.get(name)
        if hasattr(metadata, "keypoint_names"):
            return spec_from_metadata(metadata)
    return None


def export_metadata(cfg, fmt: str, size: Tuple[int, int], dynamic: bool) -> Dict:
    """What a runtime needs besides the graph (see the module docstring)."""
    k = cfg.MODEL.INSPOSE.NUM_KEYPOINTS
    spec = _keypoint_spec(cfg)
    if spec is not None and spec.num_keypoints != k:
        raise ExportError(
            f"MODEL.INSPOSE.NUM_KEYPOINTS {k} but the config's dataset has {spec.num_keypoints} "
            "keypoints"
        )
    if spec is None:
        logger.warning("no registered dataset in the config: keypoint names are keypoint_0 ...")
    return {
        "format_version": FORMAT_VERSION,
        "format": fmt,
        "num_keypoints": k,
        "keypoint_names": list(spec.names) if spec else [f"keypoint_{i}" for i in range(k)],
        "flip_pairs": [list(p) for p in spec.flip_pairs] if spec else [],
        "skeleton": [list(e) for e in spec.skeleton] if spec else [],
        "oks_sigmas": list(spec.oks_sigmas) if spec else [],
        "input_format": cfg.INPUT.FORMAT,
        "min_size_test": int(cfg.INPUT.MIN_SIZE_TEST),
        "max_size_test": int(cfg.INPUT.MAX_SIZE_TEST),
        "max_detections": int(cfg.TEST.DETECTIONS_PER_IMAGE),
        "kpnet_depth": int(cfg.MODEL.INSPOSE.KPNET_DEPTH),
        "output_stride": int(cfg.MODEL.INSPOSE.OUTPUT_STRIDE),
        "dynamic": bool(dynamic),
        "dynamic_side_range": [DYNAMIC_MIN_SIDE, DYNAMIC_MAX_SIDE] if dynamic else None,
        "input_size": list(size),
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
    }


def example_inputs(size: Tuple[int, int], device="cpu") -> Tuple[torch.Tensor, torch.Tensor]:
    """A (3, h, w) example image (0-255 noise, fixed seed) and its original size (2,)."""
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, *size), generator=generator).float().to(device)
    return image, torch.tensor([float(size[0]), float(size[1])], device=device)


# A dynamic export's input sides: above 128 px, so that every FPN level (down to P7, stride 128)
# is at least 2 cells wide (torch.export specialises sizes of 1).
DYNAMIC_MIN_SIDE, DYNAMIC_MAX_SIDE = 129, 4096


def _dynamic_shapes(dynamic: bool):
    if not dynamic:
        return None
    height = torch.export.Dim("height", min=DYNAMIC_MIN_SIDE, max=DYNAMIC_MAX_SIDE)
    width = torch.export.Dim("width", min=DYNAMIC_MIN_SIDE, max=DYNAMIC_MAX_SIDE)
    return {"image": {1: height, 2: width}, "original_size": None}


def export_program(model: torch.nn.Module, size: Tuple[int, int], dynamic: bool = False):
    """``torch.export`` of ``InsPoseInference(model)`` from an example image of ``size`` (h, w)."""
    module = InsPoseInference(model).eval()
    with torch.no_grad():
        return torch.export.export(module, example_inputs(size, model.device), dynamic_shapes=_dynamic_shapes(dynamic))


def export_model(
    cfg,
    model: torch.nn.Module,
    fmt: str,
    output: str,
    size: Tuple[int, int],
    dynamic: bool = False,
    opset: Optional[int] = None,
    optimize: bool = False,
) -> Dict:
    """Export ``model`` (built from ``cfg``, weights loaded) to ``output``; returns the metadata.

    Args:
        fmt: "onnx" or "torch_export"; size: the example image's (h, w), the input size of a
            static export; dynamic: any input height and width (32 to 4096).
        opset: ONNX opset (default 19); optimize: run the ONNX exporter's graph optimiser (slow
            to export; ONNX Runtime optimises the graph when it loads it either way).
    """
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not one of {FORMATS}")
    check_exportable(cfg, dynamic)
    check_opset(cfg, fmt, opset or DEFAULT_OPSET)
    metadata = export_metadata(cfg, fmt, size, dynamic)
    program = export_program(model, size, dynamic)
    if fmt == "torch_export":
        torch.export.save(program, output, extra_files={TORCH_EXPORT_EXTRA_FILE: json.dumps(metadata)})
    else:
        save_onnx(program, output, metadata, opset or DEFAULT_OPSET, optimize)
    return metadata


def save_onnx(program, output: str, metadata: Dict, opset: int = DEFAULT_OPSET, optimize: bool = False) -> None:
    """The ONNX translation of a ``torch.export`` program, with the metadata, written to ``output``."""
    import onnx

    onnx_program = torch.onnx.export(
        program,
        dynamo=True,
        opset_version=opset,
        optimize=optimize,
        input_names=list(INPUT_NAMES),
        output_names=list(OUTPUT_NAMES),
    )
    onnx_program.save(output)
    proto = onnx.load(output)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(proto, output)


def load_torch_export(path: str):
    """(program, metadata) of a ``torch.export`` archive written by ``export_model``."""
    extra = {TORCH_EXPORT_EXTRA_FILE: ""}
    program = torch.export.load(path, extra_files=extra)
    return program, check_metadata(extra[TORCH_EXPORT_EXTRA_FILE], path)


def convolution_weight_inputs(path: str) -> List[str]:
    """Names of the ONNX Conv nodes whose weight is not a constant (an initializer or Constant)."""
    import onnx

    proto = onnx.load(path)
    constants = {i.name for i in proto.graph.initializer}
    constants |= {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in proto.graph.node if n.op_type == "Conv" and n.input[1] not in constants]
