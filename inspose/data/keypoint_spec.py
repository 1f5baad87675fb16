"""Keypoint metadata as data: names, flip pairs, skeleton and OKS sigmas, in one place.

A ``KeypointSpec`` is written with 0-based index pairs and converted to detectron2's name-based
metadata keys (``keypoint_names``, ``keypoint_flip_map``, ``keypoint_connection_rules``) plus
``keypoint_oks_sigmas``, which detectron2 does not define and InsPose's evaluation reads. Nothing in
InsPose assumes 17 keypoints: K, flips, skeleton and sigmas always come from a dataset's metadata.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["KeypointSpec", "COCO_PERSON", "side_of", "SIDE_COLORS", "spec_from_metadata"]

# Colours (RGB) of the paper's Figure 2: left body blue, right body orange, centre magenta.
SIDE_COLORS = {"left": (30, 110, 255), "right": (255, 140, 0), "centre": (230, 0, 230)}


def side_of(index: int, names: Sequence[str], flip_pairs: Sequence[Tuple[int, int]]) -> str:
    """'left', 'right' or 'centre' for keypoint ``index``: by name, else by flip pair position."""
    name = names[index].lower()
    if "left" in name:
        return "left"
    if "right" in name:
        return "right"
    for a, b in flip_pairs:
        if index == a:
            return "left"
        if index == b:
            return "right"
    return "centre"


@dataclass(frozen=True)
class KeypointSpec:
    """Keypoint metadata of a dataset (all index pairs 0-based).

    Attributes:
        names: K keypoint names, in the dataset's order.
        flip_pairs: pairs of indices swapped by a horizontal flip.
        skeleton: pairs of indices joined when drawing.
        oks_sigmas: K per-keypoint OKS sigmas (COCO's are the published values / 10).
    """

    names: Tuple[str, ...]
    flip_pairs: Tuple[Tuple[int, int], ...]
    skeleton: Tuple[Tuple[int, int], ...]
    oks_sigmas: Tuple[float, ...]

    def __post_init__(self):
        k = len(self.names)
        if len(set(self.names)) != k:
            raise ValueError(f"keypoint names must be unique: {self.names}")
        if len(self.oks_sigmas) != k:
            raise ValueError(f"{len(self.oks_sigmas)} OKS sigmas for {k} keypoints")
        for label, pairs in (("flip pair", self.flip_pairs), ("skeleton link", self.skeleton)):
            for a, b in pairs:
                if not (0 <= a < k and 0 <= b < k):
                    raise ValueError(f"{label} ({a}, {b}) is outside 0..{k - 1}")

    @classmethod
    def from_parts(cls, names, flip_pairs, skeleton, oks_sigmas) -> "KeypointSpec":
        """A spec from any sequences (lists from JSON, say), stored as tuples of ints / floats."""
        return cls(
            tuple(names),
            tuple((int(a), int(b)) for a, b in flip_pairs),
            tuple((int(a), int(b)) for a, b in skeleton),
            tuple(float(s) for s in oks_sigmas),
        )

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def flip_indices(self) -> np.ndarray:
        """(K,) int array: keypoint i becomes keypoint flip_indices[i] after a horizontal flip."""
        indices = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            indices[a], indices[b] = b, a
        return indices

    def connection_rules(self) -> List[Tuple[str, str, Tuple[int, int, int]]]:
        """detectron2 ``keypoint_connection_rules``: (name, name, RGB) coloured by body side."""
        rules = []
        for a, b in self.skeleton:
            sides = {side_of(a, self.names, self.flip_pairs), side_of(b, self.names, self.flip_pairs)}
            side = sides.pop() if len(sides) == 1 else "centre"
            rules.append((self.names[a], self.names[b], SIDE_COLORS[side]))
        return rules

    def to_metadata(self) -> Dict[str, object]:
        """The metadata keys detectron2 and InsPose read."""
        return {
            "keypoint_names": tuple(self.names),
            "keypoint_flip_map": tuple((self.names[a], self.names[b]) for a, b in self.flip_pairs),
            "keypoint_connection_rules": self.connection_rules(),
            "keypoint_oks_sigmas": list(self.oks_sigmas),
        }


def spec_from_metadata(metadata) -> KeypointSpec:
    """Rebuild a ``KeypointSpec`` from a detectron2 ``Metadata`` with keypoint keys.

    Raises:
        KeyError: naming the dataset and the missing key.
    """
    name = getattr(metadata, "name", "?")
    for key in ("keypoint_names", "keypoint_oks_sigmas"):
        if not hasattr(metadata, key):
            raise KeyError(f"dataset {name!r}: metadata has no {key!r}")
    names = tuple(metadata.keypoint_names)
    index = {n: i for i, n in enumerate(names)}
    flip_pairs = tuple((index[a], index[b]) for a, b in getattr(metadata, "keypoint_flip_map", ()))
    skeleton = tuple(
        (index[rule[0]], index[rule[1]])
        for rule in getattr(metadata, "keypoint_connection_rules", ())
        if rule[0] in index and rule[1] in index
    )
    return KeypointSpec(names, flip_pairs, skeleton, tuple(metadata.keypoint_oks_sigmas))


COCO_PERSON = KeypointSpec(
    names=(
        "nose",
        "left_eye", "right_eye",
        "left_ear", "right_ear",
        "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow",
        "left_wrist", "right_wrist",
        "left_hip", "right_hip",
        "left_knee", "right_knee",
        "left_ankle", "right_ankle",
    ),  # fmt: skip
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # COCO's 19 skeleton links (the category record's 1-based pairs, minus one).
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
        (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),  # fmt: skip
    oks_sigmas=tuple(
        s / 10.0
        for s in (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62,
                  1.07, 1.07, .87, .87, .89, .89)
    ),  # fmt: skip
)
