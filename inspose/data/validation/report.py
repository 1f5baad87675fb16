"""The outcome of validating one file: the repair / warning kinds, ``ValidationReport`` with
its summary lines, and ``AnnotationError`` with ``_Errors``, which collects the problems."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

# kind -> (what its ids are, what was done). The order is the order of the summary lines.
REPAIR_KINDS: Dict[str, Tuple[str, str]] = {
    "iscrowd_set": ("annotation", "missing iscrowd set to 0"),
    "crowd_keypoints_zeroed": ("annotation", "crowd region without keypoints given 3K zeros"),
    "unlabelled_xy_zeroed": ("annotation", "keypoints with v=0 and non-zero x,y set to x=y=0"),
    "num_keypoints_set": ("annotation", "missing num_keypoints set to the count of v>0"),
    "num_keypoints_recounted": ("annotation", "num_keypoints disagreeing with the flags recounted"),
    "bbox_from_keypoints": ("annotation", "missing bbox set to the labelled keypoints' box"),
    "area_from_bbox": ("annotation", "missing area set to bbox width*height"),
    "skeleton_dropped": ("category", "skeleton with indices outside 1..K replaced by []"),
}
WARNING_KINDS: Dict[str, Tuple[str, str]] = {
    "keypoints_outside_image": ("annotation", "labelled keypoints outside the image, kept"),
    "zero_size_box": ("annotation", "bbox with zero width or height, kept"),
    "image_without_annotations": ("image", "images without any annotation"),
    "crowd_only_image": ("image", "images whose annotations are all crowd regions"),
}

_SHOWN_IDS = 5  # ids named per summary line
_SHOWN_ERRORS = 20  # error lines in an AnnotationError message


class AnnotationError(ValueError):
    """A problem in an annotation file that cannot be repaired.

    The message names the file, the record(s) and what is wrong; ``errors`` holds every problem
    found (one string each, each naming the file).
    """

    def __init__(self, message: str, errors: Optional[List[str]] = None):
        super().__init__(message)
        self.errors = list(errors) if errors else [message]


@dataclass
class ValidationReport:
    """What ``validate_keypoint_json`` repaired and warned about, per kind.

    Attributes:
        json_file: the file the report is about.
        repairs: kind (see ``REPAIR_KINDS``) -> ids of the records repaired, in file order.
        warnings: kind (see ``WARNING_KINDS``) -> ids of the records concerned (nothing changed).
    """

    json_file: str
    repairs: Dict[str, List[int]] = field(default_factory=dict)
    warnings: Dict[str, List[int]] = field(default_factory=dict)

    def add_repair(self, kind: str, ids: List[int]) -> None:
        _add_ids(self.repairs, REPAIR_KINDS, kind, ids)

    def add_warning(self, kind: str, ids: List[int]) -> None:
        _add_ids(self.warnings, WARNING_KINDS, kind, ids)

    @property
    def changed(self) -> bool:
        """True when any repair was made (the returned dict differs from the input)."""
        return any(self.repairs.values())

    def summary(self) -> List[str]:
        """One line per kind: the file, 'repaired'/'warning', the kind, count and first few ids."""
        lines = []
        for verb, found, table in (("repaired", self.repairs, REPAIR_KINDS),
                                   ("warning", self.warnings, WARNING_KINDS)):  # fmt: skip
            for kind, (record, description) in table.items():
                ids = found.get(kind)
                if ids:
                    line = _summary_line(self.json_file, verb, kind, record, description, ids)
                    lines.append(line)
        return lines


def _add_ids(found: Dict[str, List[int]], table: Dict, kind: str, ids: List[int]) -> None:
    if kind not in table:
        raise KeyError(f"unknown report kind {kind!r}")
    if ids:
        found.setdefault(kind, []).extend(ids)


def _summary_line(json_file, verb, kind, record, description, ids) -> str:
    shown = ", ".join(str(i) for i in ids[:_SHOWN_IDS])
    more = ", ..." if len(ids) > _SHOWN_IDS else ""
    plural = "s" if len(ids) != 1 else ""
    return (f"{json_file}: {verb} {kind} ({description}): {len(ids)} {record}{plural}, "
            f"ids {shown}{more}")  # fmt: skip


class _Errors:
    """Collects unrepairable problems of one file; ``raise_if_any`` raises them together."""

    def __init__(self, json_file: str):
        self.json_file = json_file
        self.problems: List[str] = []  # 'record: what is wrong'

    def add(self, record: str, problem: str) -> None:
        self.problems.append(f"{record}: {problem}")

    def raise_if_any(self) -> None:
        if not self.problems:
            return
        lines = [f"{self.json_file}: {p}" for p in self.problems]
        if len(lines) == 1:
            raise AnnotationError(lines[0])
        shown = self.problems[:_SHOWN_ERRORS]
        message = f"{self.json_file}: {len(lines)} problems:\n  " + "\n  ".join(shown)
        if len(lines) > len(shown):
            message += f"\n  ... and {len(lines) - len(shown)} more"
        raise AnnotationError(message, lines)
