"""The dataset description that ``datasets/prepare_synthetic.py --out DIR`` writes beside the data.

``DIR/synthetic.yaml`` names the two splits ``<prefix>_train`` and ``<prefix>_val`` with paths
relative to ``DIR`` (so the folder can move) and COCO's 17 keypoints. The prefix is
``synthetic_keypoints`` (the built-in names, whose registration it then repeats exactly) when DIR is
``$DETECTRON2_DATASETS/synthetic``, else ``synthetic_<DIR's name>``. ``train_command`` is the one
command that trains on it.
"""
import os
import re

from ..keypoint_spec import COCO_PERSON

__all__ = ["DESCRIPTION_FILE", "default_prefix", "train_command", "write_description"]

DESCRIPTION_FILE = "synthetic.yaml"
BUILTIN_PREFIX = "synthetic_keypoints"
DEMO_CONFIG = "configs/synthetic/InsPose_R_18_synthetic_demo.yaml"


def default_prefix(out_dir: str) -> str:
    """The split names' prefix for a dataset written to ``out_dir``."""
    builtin = os.path.join(os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")), "synthetic")
    if os.path.abspath(out_dir) == os.path.abspath(builtin):
        return BUILTIN_PREFIX
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", os.path.basename(os.path.abspath(out_dir))).strip("_")
    return f"synthetic_{stem or 'dataset'}"


def _pairs(pairs) -> str:
    names = COCO_PERSON.names
    return "[" + ", ".join(f"[{names[a]}, {names[b]}]" for a, b in pairs) + "]"


def description_text(prefix: str) -> str:
    """The YAML text of the description."""
    spec = COCO_PERSON
    return "\n".join(
        [
            "# The synthetic dataset of datasets/prepare_synthetic.py (COCO's 17 keypoints);",
            "# paths relative to this file. Train on it with DATASETS.DESCRIPTIONS (README.md).",
            f"keypoint_names: [{', '.join(spec.names)}]",
            f"flip_pairs: {_pairs(spec.flip_pairs)}",
            f"skeleton: {_pairs(spec.skeleton)}",
            f"oks_sigmas: [{', '.join(repr(round(s, 6)) for s in spec.oks_sigmas)}]",
            "splits:",
            f"  - {{name: {prefix}_train, json_file: annotations/person_keypoints_train.json, image_root: train}}",
            f"  - {{name: {prefix}_val, json_file: annotations/person_keypoints_val.json, image_root: val}}",
            "",
        ]
    )


def write_description(out_dir: str, prefix: str) -> str:
    """Write ``out_dir/synthetic.yaml``; returns its path."""
    path = os.path.join(out_dir, DESCRIPTION_FILE)
    with open(path, "w") as f:
        f.write(description_text(prefix))
    return path


def train_command(description_path: str, prefix: str, python: str = ".venv/bin/python") -> str:
    """The ``tools/train_net.py`` command (run from the repository root) that trains on it."""
    descriptions = f"\"['{os.path.abspath(description_path)}']\""
    return (
        f"{python} tools/train_net.py --config-file {DEMO_CONFIG} "
        f"DATASETS.DESCRIPTIONS {descriptions} "
        f"DATASETS.TRAIN \"('{prefix}_train',)\" DATASETS.TEST \"('{prefix}_val',)\" "
        f"OUTPUT_DIR output/{prefix}"
    )
