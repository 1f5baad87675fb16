#!/usr/bin/env python
"""Export a trained InsPose, whole (KP-Nets, decoding and NMS included), to ONNX or torch.export.

    python tools/export_model.py --config-file configs/InsPose_R_50_36ep.yaml --format onnx \
        --output inspose.onnx MODEL.WEIGHTS output/InsPose_R_50_36ep/model_final.pth
    python tools/export_model.py --config-file CFG --format torch_export --output inspose.pt2 \
        --size 800,1216 MODEL.WEIGHTS model.pth
    python tools/export_model.py --config-file CFG --format onnx --output inspose.onnx --dynamic \
        MODEL.WEIGHTS model.pth

The graph takes a resized (3, h, w) float image in INPUT.FORMAT and the original (H, W), and
returns keypoints (N, K, 3), scores (N,), boxes (N, 4) padded to N = TEST.DETECTIONS_PER_IMAGE
rows, and num_detections. --size is the example (and, without --dynamic, the only) input size;
by default the test resize of a 4:3 picture. The file carries K, keypoint names, skeleton, flip
pairs and the resize settings; run it with inspose.deploy.runtime.OnnxPosePredictor, evaluate it
with tools/evaluate_export.py. Trailing KEY VALUE pairs override the config. The logic is
inspose.deploy.
"""
import argparse
import sys


def _size(text: str):
    try:
        height, width = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size takes H,W, got {text!r}") from None
    if min(height, width) < 32:
        raise argparse.ArgumentTypeError(f"--size H,W must be at least 32 each, got {text!r}")
    return height, width


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--format", required=True, choices=["onnx", "torch_export"])
    parser.add_argument("--output", required=True, metavar="FILE")
    parser.add_argument("--size", type=_size, help="H,W of the example input (default: 4:3 at the test size)")
    parser.add_argument("--dynamic", action="store_true", help="any input height and width (129 to 4096 px)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 19)")
    parser.add_argument("--optimize", action="store_true", help="run the ONNX exporter's optimiser")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import inspose  # noqa: F401  (compat shim, then detectron2 registrations)
    from inspose.deploy.cli import run_export

    return run_export(args)


if __name__ == "__main__":
    sys.exit(main())
