"""One synthetic image: background, an optional crowd region, persons, occluders, and their labels.

``compose_scene(rng, settings)`` draws everything from a single ``numpy`` ``Generator``, so an image
depends only on how that generator was seeded. Annotations follow COCO's conventions:

- ``bbox`` [x, y, w, h] and ``area`` come from the person's *visible* mask (what is left after
  later figures and occluders are drawn), as COCO derives them from the segmentation.
- keypoint ``v``: 2 visible; 1 inside the image but covered (by another figure, an occluder, or a
  face point turned away from the camera); 0 outside the image, with x = y = 0.
- A crowd region is one annotation with ``iscrowd`` 1, an RLE ``segmentation``, no keypoints.
- A person hidden entirely (no visible pixel) is not annotated: there is nothing of it to see.
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util

from .render import (
    FigureStyle,
    Placement,
    add_sensor_noise,
    draw_background,
    draw_figure,
    draw_random_shape,
    face_point_hidden,
    sample_figure_style,
)
from .skeleton import (
    KEYPOINT_NAMES,
    Figure,
    build_figure,
    sample_body_shape,
    sample_joint_angles,
    sample_yaw,
)

__all__ = ["Person", "Scene", "compose_scene", "CROWD_LABEL"]

CROWD_LABEL = 255
FACE_POINTS = tuple(
    i for i, name in enumerate(KEYPOINT_NAMES) if "eye" in name or "ear" in name or name == "nose"
)
FIGURE_MARGIN = 0.07  # half the widest part (the head), in standing heights, around the joints
MAX_PERSON_OVERLAP = 0.3  # IoU of boxes placement tries to stay under
TRUNCATION_SIDES = (("bottom", 0.4), ("left", 0.25), ("right", 0.25), ("top", 0.1))


@dataclass(frozen=True)
class Person:
    """A posed, styled and placed figure."""

    figure: Figure
    style: FigureStyle
    place: Placement
    occluded_by_object: bool

    def keypoint_pixels(self) -> np.ndarray:
        """(17, 2) keypoint pixel coordinates (may lie outside the image)."""
        return self.place.to_pixels(self.figure.keypoints)


@dataclass
class Scene:
    """A finished image and its annotations.

    Attributes:
        image: (H, W, 3) uint8 BGR.
        annotations: COCO annotation dicts without ``id`` and ``image_id``.
        masks: one (H, W) bool visible mask per annotation.
    """

    image: np.ndarray
    annotations: List[dict]
    masks: List[np.ndarray]


def _sample_image_size(rng: np.random.Generator, size_range: Sequence[int]) -> Tuple[int, int]:
    low, high = int(size_range[0]), int(size_range[1])
    height, width = rng.integers(low, high + 1, size=2)
    return int(height), int(width)


def _figure_extent(figure: Figure) -> np.ndarray:
    """(4,) x0, y0, x1, y1 of the figure around its pelvis, in standing heights."""
    points = np.stack(list(figure.joints.values()))[:, :2]
    return np.concatenate([points.min(0) - FIGURE_MARGIN, points.max(0) + FIGURE_MARGIN])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _origin_inside(rng: np.random.Generator, low: float, high: float, size: int) -> float:
    """An origin keeping [origin + low, origin + high] inside [0, size - 1] where that fits."""
    first, last = -low, size - 1 - high
    if first <= last:
        return float(rng.uniform(first, last))
    return float((first + last) / 2 + rng.uniform(-0.1, 0.1) * (high - low))


def _truncate(rng: np.random.Generator, origin, extent, height: int, width: int):
    """Move ``origin`` so that 15-50% of the figure's extent lies beyond one image border."""
    names = [name for name, _ in TRUNCATION_SIDES]
    side = names[rng.choice(len(names), p=[p for _, p in TRUNCATION_SIDES])]
    x0, y0, x1, y1 = extent
    fraction = rng.uniform(0.15, 0.5)
    ox, oy = origin
    if side == "bottom":
        oy = height - 1 - y1 + fraction * (y1 - y0)
    elif side == "top":
        oy = -y0 - fraction * (y1 - y0)
    elif side == "left":
        ox = -x0 - fraction * (x1 - x0)
    else:
        ox = width - 1 - x1 + fraction * (x1 - x0)
    return float(ox), float(oy)


def _choose_origin(rng, extent, height, width, truncated, boxes, attempts=8):
    """(pelvis pixel position, box): the first of ``attempts`` candidates that overlaps little."""
    best, best_overlap = None, np.inf
    for _ in range(attempts):
        origin = (
            _origin_inside(rng, extent[0], extent[2], width),
            _origin_inside(rng, extent[1], extent[3], height),
        )
        if truncated:
            origin = _truncate(rng, origin, extent, height, width)
        box = extent + np.array([origin[0], origin[1], origin[0], origin[1]])
        overlap = max([_iou(box, other) for other in boxes], default=0.0)
        if overlap < best_overlap:
            best, best_overlap = (origin, box), overlap
        if overlap <= MAX_PERSON_OVERLAP:
            break
    return best


def _sample_figure(rng: np.random.Generator) -> Figure:
    roll = float(np.clip(rng.normal(0.0, 4.0), -12.0, 12.0))
    return build_figure(sample_body_shape(rng), sample_joint_angles(rng), sample_yaw(rng), roll)


def _sample_persons(rng, height: int, width: int, settings) -> List[Person]:
    """Persons in drawing order: smaller (farther) first."""
    count = int(rng.integers(settings.min_persons, settings.max_persons + 1))
    persons, boxes = [], []
    for _ in range(count):
        figure, style = _sample_figure(rng), sample_figure_style(rng)
        scale = float(rng.uniform(settings.min_person_height, settings.max_person_height) * height)
        truncated = bool(rng.random() < settings.truncation)
        occluded = bool(rng.random() < settings.occlusion)
        origin, box = _choose_origin(
            rng, _figure_extent(figure) * scale, height, width, truncated, boxes
        )
        boxes.append(box)
        persons.append(Person(figure, style, Placement(origin, scale), occluded))
    order = sorted(range(count), key=lambda i: (persons[i].place.scale, i))
    return [persons[i] for i in order]


def _draw_crowd(rng, image: np.ndarray, labels: np.ndarray) -> None:
    """5-10 small, overlapping figures packed into one region, all drawn with ``CROWD_LABEL``."""
    height, width = labels.shape
    region_width = rng.uniform(0.25, 0.45) * width
    left = rng.uniform(0, width - region_width)
    baseline = rng.uniform(0.35, 0.95) * height
    figures = []
    for _ in range(int(rng.integers(5, 11))):
        scale = rng.uniform(0.08, 0.16) * height
        feet = baseline - rng.uniform(0.0, 0.3) * scale
        origin = (rng.uniform(left, left + region_width), feet - 0.5 * scale)
        figures.append(
            (feet, _sample_figure(rng), sample_figure_style(rng), Placement(origin, scale))
        )
    for _, figure, style, place in sorted(figures, key=lambda f: f[0]):
        draw_figure(image, labels, figure, place, style, CROWD_LABEL)


def _draw_occluder(rng, image: np.ndarray, labels: np.ndarray, person: Person) -> None:
    """A non-human object in front of part of ``person``: over a random joint or across the legs."""
    points = person.keypoint_pixels()
    scale = person.place.scale
    if rng.random() < 0.3:
        knees_y = points[[13, 14], 1].mean()
        x0, x1 = points[:, 0].min() - 0.1 * scale, points[:, 0].max() + 0.1 * scale
        box = (x0, knees_y - rng.uniform(0.0, 0.1) * scale, x1, points[:, 1].max() + 0.1 * scale)
    else:
        target = (
            points[int(rng.integers(0, len(points)))] + rng.uniform(-0.08, 0.08, size=2) * scale
        )
        half = rng.uniform(0.08, 0.18, size=2) * scale
        box = (target[0] - half[0], target[1] - half[1], target[0] + half[0], target[1] + half[1])
    draw_random_shape(rng, image, labels, tuple(float(v) for v in box))


def _mask_box(mask: np.ndarray) -> List[float]:
    """[x, y, w, h] of a non-empty mask's pixels (COCO's box of a segmentation)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    x0, y0 = int(cols[0]), int(rows[0])
    return [float(x0), float(y0), float(cols[-1] - x0 + 1), float(rows[-1] - y0 + 1)]


def _keypoint_labels(person: Person, labels: np.ndarray, label: int) -> List[float]:
    """COCO's flat [x1, y1, v1, ...] for one person (2-decimal pixel-index coordinates)."""
    height, width = labels.shape
    flat: List[float] = []
    for index, (x, y) in enumerate(person.keypoint_pixels()):
        x, y = round(float(x), 2), round(float(y), 2)
        if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
            flat += [0, 0, 0]
            continue
        uncovered = labels[int(round(y)), int(round(x))] == label
        turned_away = index in FACE_POINTS and face_point_hidden(
            person.figure, KEYPOINT_NAMES[index]
        )
        flat += [x, y, 2 if uncovered and not turned_away else 1]
    return flat


def _person_annotation(
    person: Person, labels: np.ndarray, label: int
) -> Optional[Tuple[dict, np.ndarray]]:
    mask = labels == label
    area = int(mask.sum())
    if area == 0:
        return None
    keypoints = _keypoint_labels(person, labels, label)
    annotation = {
        "category_id": 1,
        "keypoints": keypoints,
        "num_keypoints": int(sum(1 for v in keypoints[2::3] if v > 0)),
        "bbox": _mask_box(mask),
        "area": float(area),
        "iscrowd": 0,
    }
    return annotation, mask


def _crowd_annotation(labels: np.ndarray) -> Optional[Tuple[dict, np.ndarray]]:
    mask = labels == CROWD_LABEL
    if not mask.any():
        return None
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    annotation = {
        "category_id": 1,
        "keypoints": [0] * (3 * len(KEYPOINT_NAMES)),
        "num_keypoints": 0,
        "bbox": _mask_box(mask),
        "area": float(mask_util.area(rle)),
        "iscrowd": 1,
        "segmentation": {
            "size": [int(s) for s in rle["size"]],
            "counts": rle["counts"].decode("ascii"),
        },
    }
    return annotation, mask


def compose_scene(rng: np.random.Generator, settings) -> Scene:
    """Draw one image and annotate it; ``settings`` is a ``GeneratorSettings``."""
    height, width = _sample_image_size(rng, settings.image_size)
    image = draw_background(rng, height, width, settings.clutter)
    labels = np.zeros((height, width), np.uint8)
    if rng.random() < settings.crowd_probability:
        _draw_crowd(rng, image, labels)
    persons = _sample_persons(rng, height, width, settings)
    for label, person in enumerate(persons, start=1):
        draw_figure(image, labels, person.figure, person.place, person.style, label)
        if person.occluded_by_object:
            _draw_occluder(rng, image, labels, person)
    image = add_sensor_noise(rng, image, 2.0 + 6.0 * settings.clutter)
    results = [
        _person_annotation(person, labels, label) for label, person in enumerate(persons, start=1)
    ]
    results.append(_crowd_annotation(labels))
    kept = [result for result in results if result is not None]
    return Scene(image, [annotation for annotation, _ in kept], [mask for _, mask in kept])
