#!/usr/bin/env python
"""The evaluation step of a sweep run (``tools/sweep.py`` runs it): evaluate ``model_final.pth``
and write its ``final_metrics.json``.

    python tools/evaluate_run.py --config-file CFG --output DIR/RUN/final_metrics.json \
        OUTPUT_DIR DIR/RUN MODEL.WEIGHTS DIR/RUN/model_final.pth KEY VALUE ...

What ``tools/train_net.py --eval-only`` does, plus writing the metrics to a file instead of only
logging them. It logs to ``OUTPUT_DIR/log.txt`` after the training log and leaves the training's
``config.yaml`` alone. With several test datasets the first one's metrics are written. The logic
is ``inspose.sweep.run.evaluate_run``.
"""
import argparse
import sys

FINAL_METRICS_FILE = "final_metrics.json"  # inspose.sweep.results.FINAL_METRICS_FILE (no torch for --help)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--output", required=True, help=f"the {FINAL_METRICS_FILE} to write")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import inspose  # noqa: F401  (first: compat shim, registrations)
    from inspose.engine import setup_cfg
    from inspose.engine.user_errors import exit_on_user_error
    from inspose.sweep.run import evaluate_run

    exit_on_user_error("evaluate_run", lambda: evaluate_run(setup_cfg(args, default_setup_fn=None), args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
