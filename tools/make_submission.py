#!/usr/bin/env python
"""Write a COCO test-dev keypoint submission (results json + zip) for trained weights.

    python tools/make_submission.py --config-file configs/InsPose_R_50_36ep.yaml \
        --output submissions/ MODEL.WEIGHTS output/InsPose_R_50_36ep/model_final.pth
    python tools/make_submission.py --config-file CFG --output DIR --name my-model --num-gpus 8 \
        MODEL.WEIGHTS model.pth
    python tools/make_submission.py --config-file CFG --output DIR \
        --image-info my_images.json --image-root my_images/ MODEL.WEIGHTS model.pth

Writes DIR/person_keypoints_test-dev2017_<NAME>_results.json and the .zip to upload (NAME defaults
to the config file's stem). Default images: COCO test-dev; ``--image-info/--image-root`` predict on
another image list (a json with an ``images`` list). Trailing ``KEY VALUE`` pairs override the
config. Exits 1 with a message (and writes nothing) when an image is missing or corrupt or the
results do not validate. The logic is ``inspose.submission``.
"""
import argparse
import sys
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder of the json and zip")
    parser.add_argument("--name", help="algorithm name in the file name (default: the config's stem)")
    parser.add_argument("--image-info", metavar="JSON", help="image list to predict on instead of test-dev")
    parser.add_argument("--image-root", metavar="DIR", help="folder the image list's file_names are in")
    parser.add_argument("--num-gpus", type=int, default=1, help="processes, one per GPU")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    if (args.image_info is None) != (args.image_root is None):
        parser.error("--image-info and --image-root go together")
    args.name = args.name or Path(args.config_file).stem
    return args


def main(argv=None) -> int:
    """0 when the submission was written; 1 with an error message on a known failure."""
    args = parse_args(argv)
    import inspose  # noqa: F401  (first: compat shim, then detectron2 registrations)
    from inspose.submission import run_submission

    return run_submission(args)


if __name__ == "__main__":
    sys.exit(main())
