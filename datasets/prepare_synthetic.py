#!/usr/bin/env python
"""Generate the synthetic COCO-format person-keypoint dataset.

Gentle defaults (the CPU demo's dataset):
    .venv/bin/python datasets/prepare_synthetic.py --out datasets/synthetic \
        --num-train 1000 --num-val 200

Harder data, e.g.:
    .venv/bin/python datasets/prepare_synthetic.py --out /tmp/synthetic_hard --num-train 2000 \
        --num-val 500 --hard            # or pick flags: --max-persons 8 --min-person-height 0.1 ...

Writes OUT/annotations/person_keypoints_{train,val}.json and OUT/{train,val}/*.jpg, and the
dataset description OUT/synthetic.yaml (splits NAME_train and NAME_val, ``--name``), then prints the
command that trains on it; the same seed and settings give byte-identical files. ``--preview PATH`` also saves a picture of the first train
images with their ground truth drawn on them.
"""

import argparse
import os
import sys
import time
from dataclasses import fields

try:
    import inspose  # noqa: F401
except ImportError:  # not installed with `pip install -e .`: use this checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from inspose.data.synthetic.description import (  # noqa: E402
    default_prefix,
    train_command,
    write_description,
)
from inspose.data.synthetic import (
    GeneratorSettings,
    draw_ground_truth,
    generate_dataset,
    render_image,
)  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    defaults = GeneratorSettings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--name",
        help="prefix of the split names in OUT/synthetic.yaml (default: synthetic_keypoints for "
        "$DETECTRON2_DATASETS/synthetic, else synthetic_<OUT's folder name>)",
    )
    parser.add_argument("--num-train", type=int, required=True)
    parser.add_argument("--num-val", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers", type=int, default=2, help="processes (output does not depend on it)"
    )
    parser.add_argument("--hard", action="store_true", help="start from GeneratorSettings.hard()")
    knobs = parser.add_argument_group("settings (default: gentle, or the --hard preset)")
    knobs.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="side length range in pixels (default %d %d)" % defaults.image_size,
    )
    knobs.add_argument("--min-persons", type=int, help=f"default {defaults.min_persons}")
    knobs.add_argument("--max-persons", type=int, help=f"default {defaults.max_persons}")
    knobs.add_argument(
        "--min-person-height",
        type=float,
        help=f"fraction of image height (default {defaults.min_person_height})",
    )
    knobs.add_argument(
        "--max-person-height", type=float, help=f"default {defaults.max_person_height}"
    )
    knobs.add_argument(
        "--occlusion", type=float, help=f"probability per person (default {defaults.occlusion})"
    )
    knobs.add_argument(
        "--truncation", type=float, help=f"probability per person (default {defaults.truncation})"
    )
    knobs.add_argument(
        "--crowd-probability", type=float, help=f"per image (default {defaults.crowd_probability})"
    )
    knobs.add_argument("--clutter", type=float, help=f"0..1 (default {defaults.clutter})")
    knobs.add_argument("--jpeg-quality", type=int, help=f"default {defaults.jpeg_quality}")
    parser.add_argument(
        "--preview", metavar="PATH", help="also save the first train images with their ground truth"
    )
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> GeneratorSettings:
    """The preset (gentle or --hard) with every flag that was given applied on top."""
    overrides = {
        f.name: getattr(args, f.name)
        for f in fields(GeneratorSettings)
        if getattr(args, f.name, None) is not None
    }
    return GeneratorSettings.hard(**overrides) if args.hard else GeneratorSettings(**overrides)


def print_progress(split: str, done: int, total: int) -> None:
    if done == total or done % max(1, total // 10) == 0:
        print(f"  {split}: {done}/{total} images", flush=True)


def save_preview(path: str, seed: int, settings: GeneratorSettings, count: int = 2) -> None:
    """Top row: the first ``count`` train images; bottom row: with ground truth (JPEG q80)."""
    scenes = [render_image(seed, "train", index, settings) for index in range(count)]
    height = max(scene.image.shape[0] for scene in scenes)
    width = max(scene.image.shape[1] for scene in scenes)
    pad = lambda image: cv2.copyMakeBorder(
        image,
        0,
        height - image.shape[0],
        0,
        width - image.shape[1],  # noqa: E731
        cv2.BORDER_CONSTANT,
        value=(255, 255, 255),
    )
    top = np.concatenate([pad(scene.image) for scene in scenes], axis=1)
    bottom = np.concatenate(
        [pad(draw_ground_truth(scene.image, scene.annotations)) for scene in scenes], axis=1
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    cv2.imwrite(path, np.concatenate([top, bottom], axis=0), [cv2.IMWRITE_JPEG_QUALITY, 80])
    print(f"preview: {path} ({os.path.getsize(path) // 1024} KB)")


def main(argv=None) -> None:
    args = parse_args(argv)
    settings = settings_from_args(args)
    print(
        f"generating {args.num_train} train + {args.num_val} val images into {args.out} "
        f"(seed {args.seed}, {args.workers} workers)\n  {settings}",
        flush=True,
    )
    start = time.perf_counter()
    summary = generate_dataset(
        args.out,
        args.num_train,
        args.num_val,
        args.seed,
        settings,
        args.workers,
        progress=print_progress,
    )
    seconds = time.perf_counter() - start
    total = args.num_train + args.num_val
    print(f"wrote {summary['train_json']} ({summary['train_annotations']} annotations)")
    print(f"wrote {summary['val_json']} ({summary['val_annotations']} annotations)")
    print(
        f"time: {seconds:.1f} s for {total} images ({1000 * seconds / max(total, 1):.0f} ms/image)"
    )
    if args.preview:
        save_preview(args.preview, args.seed, settings)
    prefix = args.name or default_prefix(args.out)
    description = write_description(args.out, prefix)
    print(f"wrote {description} (datasets {prefix}_train, {prefix}_val)")
    print("train on it (from the repository root):")
    print(f"  {train_command(description, prefix)}")


if __name__ == "__main__":
    main()
