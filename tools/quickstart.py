#!/usr/bin/env python
"""`make demo`: the synthetic quick-start, InsPose end to end on the CPU on data the project makes.

1. generates the synthetic dataset under $DETECTRON2_DATASETS/synthetic if it is absent
   (datasets/prepare_synthetic.py, gentle default settings, seed 0);
2. trains the small CPU InsPose (configs/synthetic/InsPose_R_18_synthetic_demo.yaml) from scratch,
   stopping early if the training time budget runs out;
3. evaluates on synthetic val with pycocotools (OKS AP / AR table);
4. draws the predictions on a few val images into OUTPUT_DIR/examples/.

    python tools/quickstart.py [--budget-minutes 15] [--num-train 2000] [--num-val 200] [KEY VALUE ...]

The logic is ``inspose.quickstart``; this file is the command line.
"""
import argparse
import sys

DEMO_CONFIG = "configs/synthetic/InsPose_R_18_synthetic_demo.yaml"  # inspose.quickstart.DEMO_CONFIG


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=DEMO_CONFIG)
    parser.add_argument("--budget-minutes", type=float, default=15.0, help="training time budget")
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-val", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--num-examples", type=int, default=6, help="val pictures to draw")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import inspose  # noqa: F401  (first: makes detectron2 importable, registers model and datasets)
    from inspose.engine.user_errors import exit_on_user_error
    from inspose.quickstart import QuickstartOptions, run_quickstart

    exit_on_user_error("quickstart", lambda: run_quickstart(QuickstartOptions(**vars(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
