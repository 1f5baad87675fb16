#!/usr/bin/env python
"""pycocotools OKS AP of an exported ONNX model on a registered dataset (ONNX Runtime, CPU).

    python tools/evaluate_export.py --model inspose.onnx --dataset keypoints_coco_2017_val
    python tools/evaluate_export.py --model inspose.onnx --config-file CFG   # its DATASETS.TEST

Prints the AP / AR table as training's evaluation does (the dataset's OKS sigmas). The config file,
when given, registers what it describes and names the datasets. The logic is inspose.deploy.
"""
import argparse
import sys


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, metavar="FILE", help="an .onnx file from tools/export_model.py")
    parser.add_argument("--dataset", action="append", default=[], help="registered dataset (repeatable)")
    parser.add_argument("--config-file", metavar="FILE", help="a config whose DATASETS.TEST to use")
    parser.add_argument("--output", metavar="DIR", help="folder for the results json")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its default)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    if not args.dataset and not args.config_file:
        parser.error("name a --dataset or a --config-file")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import inspose  # noqa: F401  (compat shim, then detectron2 registrations)
    from inspose.deploy.cli import run_evaluation

    return run_evaluation(args)


if __name__ == "__main__":
    sys.exit(main())
