"""Writes a synthetic person-keypoint dataset in COCO format, deterministically.

Layout written by ``generate_dataset(out_dir, ...)``::

    out_dir/annotations/person_keypoints_train.json
    out_dir/annotations/person_keypoints_val.json
    out_dir/train/000000000001.jpg ...
    out_dir/val/000001000001.jpg ...

Image ``index`` of a split is drawn from its own ``numpy`` generator seeded with
``SeedSequence([seed, split_id, index])``, so the output is byte-identical for any number of worker
processes, and train and val never share an image. Image ids are ``index + 1`` (train) and
``1_000_000 + index + 1`` (val); annotation ids are ``image_id * 100 + j``.
"""

import json
import multiprocessing
import os
import re
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np

from ..keypoint_spec import COCO_PERSON
from .scene import Scene, compose_scene

__all__ = ["GeneratorSettings", "generate_dataset", "render_image", "SPLITS", "image_id_of"]

# split name -> (split id used in seeding, image id offset)
SPLITS: Dict[str, Tuple[int, int]] = {"train": (0, 0), "val": (1, 1_000_000)}
MAX_ANNOTATIONS_PER_IMAGE = 100  # annotation id = image_id * 100 + j
IMAGE_NAME = re.compile(r"^\d{12}\.jpg$")

ProgressCallback = Callable[[str, int, int], None]  # (split, images done, images in split)


@dataclass(frozen=True)
class GeneratorSettings:
    """Knobs of the generator. The defaults are gentle: a small model learns them on a CPU.

    Attributes:
        image_size: (min, max) side length in pixels; height and width are drawn independently.
        min_persons, max_persons: persons per image (fully hidden ones are not annotated).
        min_person_height, max_person_height: standing height as a fraction of the image height.
        occlusion: probability that an object is drawn over part of a person.
        truncation: probability that a person is placed partly outside the image.
        crowd_probability: probability of a crowd region (one ``iscrowd`` annotation) per image.
        clutter: background clutter and noise in [0, 1] (0.25 = a few shapes; 1 = about two dozen).
        jpeg_quality: JPEG quality of the written images.
    """

    image_size: Tuple[int, int] = (320, 384)
    min_persons: int = 1
    max_persons: int = 3
    min_person_height: float = 0.35
    max_person_height: float = 0.9
    occlusion: float = 0.15
    truncation: float = 0.10
    crowd_probability: float = 0.05
    clutter: float = 0.25
    jpeg_quality: int = 90

    def __post_init__(self):
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        self.validate()

    def validate(self) -> None:
        """Raises ``ValueError`` naming the first setting out of range."""
        low, high = self.image_size
        checks = [
            (
                16 <= low <= high,
                f"image_size must be (min, max) with 16 <= min <= max, got {self.image_size}",
            ),
            (
                0 <= self.min_persons <= self.max_persons < MAX_ANNOTATIONS_PER_IMAGE - 1,
                f"need 0 <= min_persons <= max_persons <= 98, got {self.min_persons}, "
                f"{self.max_persons}",
            ),
            (
                0 < self.min_person_height <= self.max_person_height <= 2.0,
                "need 0 < min_person_height <= max_person_height <= 2",
            ),
            (
                1 <= self.jpeg_quality <= 100,
                f"jpeg_quality must be in 1..100, got {self.jpeg_quality}",
            ),
        ]
        for name in ("occlusion", "truncation", "crowd_probability", "clutter"):
            value = getattr(self, name)
            checks.append((0.0 <= value <= 1.0, f"{name} must be in [0, 1], got {value}"))
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @classmethod
    def hard(cls, **overrides) -> "GeneratorSettings":
        """A harder preset: more, smaller persons, heavier clutter and occlusion, bigger images."""
        values = dict(
            image_size=(512, 640),
            min_persons=2,
            max_persons=8,
            min_person_height=0.1,
            max_person_height=0.8,
            occlusion=0.35,
            truncation=0.2,
            crowd_probability=0.2,
            clutter=0.9,
        )
        values.update(overrides)
        return cls(**values)


def image_id_of(split: str, index: int) -> int:
    """COCO image id of image ``index`` (0-based) of ``split``."""
    return SPLITS[split][1] + index + 1


def render_image(seed: int, split: str, index: int, settings: GeneratorSettings) -> Scene:
    """Image ``index`` of ``split``: depends only on these arguments."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got {seed}, {index}")
    split_id = SPLITS[split][0]
    rng = np.random.default_rng(np.random.SeedSequence([seed, split_id, index]))
    return compose_scene(rng, settings)


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return buffer.tobytes()


def _write_one(task: Tuple[str, str, int, int, GeneratorSettings]) -> Tuple[dict, List[dict]]:
    """Render, write the JPEG, and return the COCO image record and its annotations (with ids)."""
    image_dir, split, index, seed, settings = task
    scene = render_image(seed, split, index, settings)
    image_id = image_id_of(split, index)
    file_name = f"{image_id:012d}.jpg"
    with open(os.path.join(image_dir, file_name), "wb") as f:
        f.write(_encode_jpeg(scene.image, settings.jpeg_quality))
    height, width = scene.image.shape[:2]
    record = {"id": image_id, "file_name": file_name, "width": width, "height": height}
    annotations = [
        {"id": image_id * MAX_ANNOTATIONS_PER_IMAGE + j, "image_id": image_id, **annotation}
        for j, annotation in enumerate(scene.annotations)
    ]
    return record, annotations


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _pool_context():
    """'fork' where available (workers need not re-import torch/detectron2), else 'spawn'."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _run_tasks(tasks: list, workers: int, on_done: Callable[[int], None]) -> list:
    """``_write_one`` over ``tasks``, in order, on ``workers`` processes (1 = this process)."""
    results = []
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            results.append(_write_one(task))
            on_done(len(results))
        return results
    with _pool_context().Pool(min(workers, len(tasks)), initializer=_worker_init) as pool:
        for result in pool.imap(_write_one, tasks, chunksize=4):
            results.append(result)
            on_done(len(results))
    return results


def _category() -> dict:
    return {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(COCO_PERSON.names),
        "skeleton": [[a + 1, b + 1] for a, b in COCO_PERSON.skeleton],
    }


def _remove_stale_images(image_dir: str, keep: set) -> None:
    """Delete earlier runs' generated images (12-digit names only) that this run does not write."""
    for name in os.listdir(image_dir):
        if IMAGE_NAME.match(name) and name not in keep:
            os.remove(os.path.join(image_dir, name))


def _generate_split(out_dir, split, count, seed, settings, workers, progress) -> Tuple[str, int]:
    image_dir = os.path.join(out_dir, split)
    os.makedirs(image_dir, exist_ok=True)
    _remove_stale_images(image_dir, {f"{image_id_of(split, i):012d}.jpg" for i in range(count)})
    tasks = [(image_dir, split, index, seed, settings) for index in range(count)]
    results = _run_tasks(
        tasks, workers, lambda done: progress(split, done, count) if progress else None
    )
    dataset = {
        "info": {
            "description": "InsPose synthetic person keypoints",
            "version": "1.0",
            "seed": seed,
            "split": split,
            "settings": asdict(settings),
        },
        "licenses": [],
        "images": [record for record, _ in results],
        "annotations": [a for _, annotations in results for a in annotations],
        "categories": [_category()],
    }
    json_path = os.path.join(out_dir, "annotations", f"person_keypoints_{split}.json")
    with open(json_path, "w") as f:
        json.dump(dataset, f)
    return json_path, len(dataset["annotations"])


def generate_dataset(
    out_dir: str,
    num_train: int,
    num_val: int,
    seed: int = 0,
    settings: Optional[GeneratorSettings] = None,
    workers: int = 2,
    progress: Optional[ProgressCallback] = None,
) -> Dict[str, object]:
    """Write ``num_train`` + ``num_val`` images and their COCO keypoint JSONs under ``out_dir``.

    Returns:
        {"train_json", "val_json": paths, "train_annotations", "val_annotations": counts,
         "seconds": wall time}.
    """
    settings = settings or GeneratorSettings()
    if not (0 <= num_train < SPLITS["val"][1] and 0 <= num_val):
        raise ValueError(
            f"need 0 <= num_train < 1000000 and num_val >= 0, got {num_train}, {num_val}"
        )
    start = time.perf_counter()
    os.makedirs(os.path.join(out_dir, "annotations"), exist_ok=True)
    summary: Dict[str, object] = {}
    for split, count in (("train", num_train), ("val", num_val)):
        json_path, num_annotations = _generate_split(
            out_dir, split, count, seed, settings, workers, progress
        )
        summary[f"{split}_json"], summary[f"{split}_annotations"] = json_path, num_annotations
    summary["seconds"] = time.perf_counter() - start
    return summary
