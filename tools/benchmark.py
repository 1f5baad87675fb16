#!/usr/bin/env python
"""Speed and memory of InsPose against detectron2's Keypoint R-CNN R-50-FPN, at batch 1.

    python tools/benchmark.py --config-file configs/InsPose_R_50_36ep.yaml --device cpu \\
        --persons 1,10,50,100 --runs 10 --size 800,1333 --output benchmark.json
    python tools/benchmark.py --config-file configs/InsPose_R_50_36ep.yaml --device cuda ...
    python tools/benchmark.py --config-file configs/InsPose_R_50_36ep.yaml --components \\
        --persons 10 --runs 5 --output components.json
    python tools/benchmark.py --config-file configs/InsPose_R_50_36ep.yaml --components \\
        --persons 100 --candidates 1000 --runs 3   # KP-Nets after NMS: 100 KP-Nets, not 1000

Both models have random weights and are forced to run their keypoint stage on exactly P persons
(each --persons value). Writes the JSON report (``columns`` in it says what each row key means)
and prints markdown tables. Trailing ``KEY VALUE`` pairs override the InsPose config.
"""
import argparse
import json
import sys
from pathlib import Path

RATE_CONV_SHAPE = (1, 256, 200, 304)  # inspose.benchmark.flops.RATE_CONV_SHAPE (no torch for --help)


def parse_ints(text: str):
    """ "1,10,50" -> [1, 10, 50]."""
    return [int(v) for v in text.replace(" ", "").split(",") if v]


def _size(text: str):
    values = parse_ints(text)
    if len(values) != 2 or min(values) < 32:
        raise argparse.ArgumentTypeError(f"--size takes H,W (each >= 32), got {text!r}")
    return tuple(values)


def _positive_ints(text: str):
    values = parse_ints(text)
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config-file", required=True, help="InsPose config (YAML)")
    p.add_argument(
        "--keypoint-rcnn-config",
        default=None,
        help="detectron2 Keypoint R-CNN config (default: the model-zoo R-50-FPN 3x recipe)",
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument(
        "--persons",
        type=_positive_ints,
        default=[1, 10, 50, 100],
        help="persons reaching the keypoint stage, one row each (default 1,10,50,100)",
    )
    p.add_argument("--runs", type=int, default=10, help="timed runs per measurement (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    p.add_argument("--size", type=_size, default=(800, 1333), help="input H,W (default 800,1333)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    p.add_argument(
        "--kpnet-instances",
        type=_positive_ints,
        default=[10, 100, 500],
        help="instance counts of the batched-vs-loop KP-Net table (default 10,100,500)",
    )
    p.add_argument("--train-persons", type=int, default=5, help="persons per training image")
    p.add_argument(
        "--rate-shape",
        type=_positive_ints,
        default=list(RATE_CONV_SHAPE),
        help="N,C,H,W of the 3x3 conv that measures the device's rate (default 1,256,200,304)",
    )
    p.add_argument("--skip-train", action="store_true", help="skip the training step")
    p.add_argument("--skip-flops", action="store_true", help="skip params, FLOPs, FLOP floors")
    p.add_argument("--skip-kpnet", action="store_true", help="skip the KP-Net table")
    p.add_argument(
        "--export",
        action="store_true",
        help="also export the model per persons value and time ONNX Runtime and torch.export (CPU)",
    )
    p.add_argument(
        "--components",
        action="store_true",
        help="instead: params, MACs and latency of the config with each of the authors' release "
        "components added alone, then all (at the first --persons value; no Keypoint R-CNN)",
    )
    p.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="--components only: candidates that reach NMS (>= the first --persons value, which "
        "stays the detections); KP-Nets run on all of them before NMS, on the detections after it "
        "(KPNETS_AFTER_NMS). Default: the --persons value",
    )
    p.add_argument("--output", help="JSON file to write")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="InsPose config overrides: KEY VALUE ...")
    return p


def options_from_args(args: argparse.Namespace):
    """``BenchmarkOptions`` of the command line (imports torch and detectron2)."""
    import inspose  # noqa: F401  (first: makes detectron2 importable, registers the model)
    from inspose.benchmark.keypoint_rcnn import KEYPOINT_RCNN_CONFIG
    from inspose.benchmark.runner import BenchmarkOptions

    if len(args.rate_shape) != 4:
        raise SystemExit("--rate-shape takes four integers N,C,H,W")
    return BenchmarkOptions(
        config_file=args.config_file,
        keypoint_rcnn_config=args.keypoint_rcnn_config or KEYPOINT_RCNN_CONFIG,
        opts=list(args.opts),
        device=args.device,
        persons=args.persons,
        runs=max(1, args.runs),
        warmup=max(0, args.warmup),
        size=args.size,
        threads=args.threads,
        kpnet_instances=args.kpnet_instances,
        train_persons=args.train_persons,
        rate_shape=tuple(args.rate_shape),
        skip_train=args.skip_train,
        skip_flops=args.skip_flops,
        skip_kpnet=args.skip_kpnet,
        export=args.export,
    )


def components_report(args: argparse.Namespace) -> dict:
    """``--components``: the release-components table (inspose/benchmark/components.py)."""
    import torch

    import inspose  # noqa: F401
    from inspose.benchmark.components import (
        COMPONENT_HEADERS, RELEASE_COMPONENTS, component_rows, component_table_rows)
    from inspose.benchmark.tables import markdown_table
    from inspose.benchmark.timing import describe_device

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = component_rows(
        args.config_file, args.opts, RELEASE_COMPONENTS, device, args.size, args.persons[0],
        max(1, args.runs), max(0, args.warmup), args.candidates,
    )  # fmt: skip
    report = {"device": describe_device(device), "size": list(args.size), "persons": args.persons[0],
              "candidates": args.candidates or args.persons[0], "config_file": args.config_file,
              "components": rows}  # fmt: skip
    report["table"] = markdown_table(COMPONENT_HEADERS, component_table_rows(rows))
    return report


def main(argv=None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.candidates is not None and not args.components:
        parser.error("--candidates applies to --components only")
    if args.candidates is not None and args.candidates < args.persons[0]:
        parser.error(f"--candidates ({args.candidates}) must be >= --persons ({args.persons[0]})")
    if args.components:
        report = components_report(args)
        if args.output:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
        sys.stdout.write(report["table"] + "\n")
        return report
    options = options_from_args(args)
    from inspose.benchmark.runner import run_benchmark
    from inspose.benchmark.tables import render_report

    report = run_benchmark(options)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(render_report(report))
    return report


if __name__ == "__main__":
    main()
