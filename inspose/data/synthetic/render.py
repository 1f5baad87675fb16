"""Drawing with OpenCV: figures (limbs, torso, a head with a face) and cluttered backgrounds.

Every drawing call paints two images: the BGR picture (anti-aliased) and a ``uint8`` label map (no
anti-aliasing) in which each pixel holds the label of whatever was drawn there last, so that a
figure's visible mask is ``labels == label`` once the whole scene is drawn. Occluders and clutter
are drawn with label 0 (background).

Cues that tell left from right: the face (eyes and nose, drawn only when they face the camera, and
the hair at the back of the head), painter's-order depth (the near side is drawn over the far side),
and a darker shade (``FigureStyle.left_shade``) on the figure's left limbs.

Point arrays are pixel coordinates in COCO's pixel-index convention (pixel ``(i, j)``'s centre is
at ``x = j, y = i``), which is also OpenCV's.
"""

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

import cv2
import numpy as np

from .skeleton import SIDES, Figure

__all__ = [
    "FigureStyle",
    "Placement",
    "sample_figure_style",
    "draw_figure",
    "draw_background",
    "draw_random_shape",
    "add_sensor_noise",
    "face_point_hidden",
]

Color = Tuple[int, int, int]
SHIFT = 4  # OpenCV sub-pixel bits: coordinates are passed multiplied by 2**SHIFT
ONE = 1 << SHIFT
SELF_OCCLUSION_DEPTH = -0.4  # face points this far behind the head's centre (in head radii) hide

# Limb widths as fractions of the standing height (before FigureStyle.width_scale).
LIMB_WIDTHS = {
    "upper_arm": 0.052,
    "forearm": 0.042,
    "hand": 0.042,
    "thigh": 0.078,
    "shin": 0.06,
    "foot": 0.042,
    "neck": 0.045,
    "hips": 0.09,
}


@dataclass(frozen=True)
class FigureStyle:
    """Colours (BGR) and build of one figure."""

    skin: Color
    hair: Color
    shirt: Color
    sleeve: Color  # forearm colour: the shirt's (long sleeves) or the skin's
    trousers: Color
    shin: Color  # the trousers' (long) or the skin's (shorts)
    shoes: Color
    width_scale: float = 1.0
    left_shade: float = 0.8  # left limbs are this much darker than right limbs


@dataclass(frozen=True)
class Placement:
    """Where a figure goes: pixel = ``origin + scale * (x, y)`` of the figure's frame."""

    origin: Tuple[float, float]
    scale: float  # pixels per standing height

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) or (3,) figure points -> (N, 2) or (2,) pixel coordinates."""
        return np.asarray(self.origin) + self.scale * np.asarray(points)[..., :2]


def _random_color(rng: np.random.Generator, saturation=(0.25, 1.0), value=(0.3, 1.0)) -> Color:
    hsv = np.array(
        [[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]]
    )
    bgr = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(c) for c in bgr)


def _mix(a: Sequence[float], b: Sequence[float], t: float) -> Color:
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b))


def _scaled(color: Sequence[int], factor: float) -> Color:
    return tuple(int(min(255, round(c * factor))) for c in color)


def sample_figure_style(rng: np.random.Generator) -> FigureStyle:
    """Random skin tone, hair, clothes and build."""
    skin = _mix((215, 225, 250), (55, 85, 140), rng.uniform())
    hair = _mix((25, 25, 30), (90, 170, 210), rng.uniform() ** 2)
    shirt, trousers = _random_color(rng), _random_color(rng)
    return FigureStyle(
        skin=skin,
        hair=hair,
        shirt=shirt,
        sleeve=shirt if rng.random() < 0.6 else skin,
        trousers=trousers,
        shin=trousers if rng.random() < 0.8 else skin,
        shoes=_random_color(rng, value=(0.1, 0.5)),
        width_scale=float(rng.uniform(0.75, 1.35)),
    )


class _Canvas:
    """The picture and the label map, drawn together with sub-pixel coordinates."""

    def __init__(self, image: np.ndarray, labels: np.ndarray, label: int):
        self.image, self.labels, self.label = image, labels, label

    @staticmethod
    def _fixed(point) -> Tuple[int, int]:
        return int(round(point[0] * ONE)), int(round(point[1] * ONE))

    def line(self, a, b, width: float, color: Color, outline: bool = True):
        """A thick segment with round caps; ``outline`` adds a darker 1-pixel rim when thick."""
        thickness = max(1, int(round(width)))
        pa, pb = self._fixed(a), self._fixed(b)
        outer = thickness + 2 if outline and thickness >= 4 else thickness
        if outer > thickness:
            cv2.line(self.image, pa, pb, _scaled(color, 0.55), outer, cv2.LINE_AA, SHIFT)
        cv2.line(self.image, pa, pb, color, thickness, cv2.LINE_AA, SHIFT)
        cv2.line(self.labels, pa, pb, self.label, outer, cv2.LINE_8, SHIFT)

    def polygon(self, points, color: Color):
        fixed = np.array([self._fixed(p) for p in points], dtype=np.int32)
        cv2.fillPoly(self.image, [fixed], color, cv2.LINE_AA, SHIFT)
        cv2.polylines(self.image, [fixed], True, _scaled(color, 0.55), 1, cv2.LINE_AA, SHIFT)
        cv2.fillPoly(self.labels, [fixed], self.label, cv2.LINE_8, SHIFT)

    def ellipse(self, center, axes, angle: float, color: Color, label: bool = True):
        c = self._fixed(center)
        ax = (max(1, int(round(axes[0] * ONE))), max(1, int(round(axes[1] * ONE))))
        cv2.ellipse(self.image, c, ax, angle, 0, 360, color, -1, cv2.LINE_AA, SHIFT)
        if label:
            cv2.ellipse(self.labels, c, ax, angle, 0, 360, self.label, -1, cv2.LINE_8, SHIFT)


def face_point_hidden(figure: Figure, name: str) -> bool:
    """Whether face keypoint ``name`` is turned away from the camera, behind the head."""
    offset = figure.joints[name] - figure.joints["head"]
    return offset[2] < SELF_OCCLUSION_DEPTH * figure.shape.head_radius


def _draw_head(canvas: _Canvas, figure: Figure, place: Placement, style: FigureStyle):
    """Hair-coloured skull, a skin face shifted towards where the head faces, ears, eyes, nose."""
    radius = figure.shape.head_radius * place.scale
    center = place.to_pixels(figure.joints["head"])
    canvas.ellipse(center, (radius, radius * 1.08), 0.0, style.hair)
    _, up, forward = figure.head_axes
    face_center = center + radius * (0.28 * forward[:2] - 0.12 * up[:2])  # a little down
    canvas.ellipse(face_center, (radius * 0.7, radius * 0.75), 0.0, style.skin)
    for side, _ in SIDES:
        if not face_point_hidden(figure, f"{side}_ear"):
            canvas.ellipse(
                place.to_pixels(figure.joints[f"{side}_ear"]), (radius * 0.2,) * 2, 0, style.skin
            )
    for side, _ in SIDES:
        if figure.joints[f"{side}_eye"][2] - figure.joints["head"][2] > 0:
            eye = place.to_pixels(figure.joints[f"{side}_eye"])
            canvas.ellipse(eye, (max(0.7, radius * 0.14),) * 2, 0, (30, 20, 20), label=False)
    if figure.joints["nose"][2] - figure.joints["head"][2] > 0:
        nose = place.to_pixels(figure.joints["nose"])
        canvas.ellipse(
            nose, (max(0.7, radius * 0.16),) * 2, 0, _scaled(style.skin, 0.7), label=False
        )


def _draw_torso(canvas: _Canvas, figure: Figure, place: Placement, style: FigureStyle, width):
    """Shirt polygon from shoulders to hips, a spine line (depth in profile), a trouser band."""
    j = {
        name: place.to_pixels(figure.joints[name])
        for name in ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "neck", "pelvis")
    }
    canvas.polygon(
        [j["left_shoulder"], j["right_shoulder"], j["right_hip"], j["left_hip"]], style.shirt
    )
    depth_width = figure.shape.torso_depth * place.scale * style.width_scale
    chest = j["neck"] + 0.15 * (j["pelvis"] - j["neck"])
    canvas.line(chest, j["pelvis"], depth_width, style.shirt, outline=False)
    canvas.line(
        j["left_shoulder"], j["right_shoulder"], width("upper_arm"), style.shirt, outline=False
    )
    canvas.line(j["left_hip"], j["right_hip"], width("hips"), style.trousers, outline=False)


def _limb_parts(figure: Figure, style: FigureStyle) -> List[Tuple[str, str, str, Color]]:
    """(start joint, end joint, width key, colour) of every limb segment, left limbs shaded."""
    parts = []
    for side, _ in SIDES:
        shade = style.left_shade if side == "left" else 1.0
        segments = [
            ("shoulder", "elbow", "upper_arm", style.shirt),
            ("elbow", "wrist", "forearm", style.sleeve),
            ("wrist", "hand", "hand", style.skin),
            ("hip", "knee", "thigh", style.trousers),
            ("knee", "ankle", "shin", style.shin),
            ("ankle", "toe", "foot", style.shoes),
        ]
        for start, end, key, color in segments:
            parts.append((f"{side}_{start}", f"{side}_{end}", key, _scaled(color, shade)))
    return parts


TORSO_CORNERS = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


def _drawing_jobs(canvas: _Canvas, figure: Figure, place: Placement, style: FigureStyle):
    """[(camera depth, tie-break order, draw call)] of every part of the figure."""
    joints = figure.joints
    width = lambda key: LIMB_WIDTHS[key] * place.scale * style.width_scale  # noqa: E731
    pixel = lambda name: place.to_pixels(joints[name])  # noqa: E731

    def segment(start: str, end: str, key: str, color: Color) -> Callable[[], None]:
        a, b = pixel(start), pixel(end)
        return lambda: canvas.line(a, b, width(key), color)

    torso_depth = float(np.mean([joints[name][2] for name in TORSO_CORNERS]))
    jobs = [
        (torso_depth, 0, lambda: _draw_torso(canvas, figure, place, style, width)),
        (float(joints["neck"][2]), 1, segment("neck", "head", "neck", style.skin)),
        (float(joints["head"][2]), 2, lambda: _draw_head(canvas, figure, place, style)),
    ]
    for order, (start, end, key, color) in enumerate(_limb_parts(figure, style), start=3):
        depth = 0.5 * float(joints[start][2] + joints[end][2])
        jobs.append((depth, order, segment(start, end, key, color)))
    return jobs


def draw_figure(
    image: np.ndarray,
    labels: np.ndarray,
    figure: Figure,
    place: Placement,
    style: FigureStyle,
    label: int,
) -> np.ndarray:
    """Draw ``figure`` on ``image`` (H, W, 3) uint8 BGR and ``labels`` (H, W) uint8, in place.

    Parts are drawn far to near (painter's order by camera depth), so the near arm covers the torso
    and the far arm hides behind it.

    Returns:
        (H, W) bool mask of the pixels the figure now owns (before anything drawn later covers it).
    """
    canvas = _Canvas(image, labels, label)
    jobs = _drawing_jobs(canvas, figure, place, style)
    for _, _, draw in sorted(jobs, key=lambda job: (job[0], job[1])):
        draw()
    return labels == label


def draw_background(
    rng: np.random.Generator, height: int, width: int, clutter: float
) -> np.ndarray:
    """(H, W, 3) uint8 BGR: a linear gradient between two colours plus ``clutter``-many shapes.

    ``clutter`` in [0, 1]: 0 = plain gradient, 0.25 = a few shapes (default), 1 = about two dozen.
    """
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xs * np.cos(angle) + ys * np.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    start = np.array(_random_color(rng, (0.0, 0.6)), np.float32)
    end = np.array(_random_color(rng, (0.0, 0.6)), np.float32)
    image = (start * (1 - t[..., None]) + end * t[..., None]).astype(np.uint8)
    unused_labels = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(0, int(round(clutter * 24)) + 1))):
        draw_random_shape(rng, image, unused_labels, _random_box(rng, height, width))
    return image


def _random_box(
    rng: np.random.Generator, height: int, width: int
) -> Tuple[float, float, float, float]:
    side = min(height, width)
    w, h = rng.uniform(0.05, 0.4, size=2) * side
    x, y = rng.uniform(-0.1 * width, width), rng.uniform(-0.1 * height, height)
    return float(x), float(y), float(x + w), float(y + h)


def draw_random_shape(rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, box) -> None:
    """A non-human shape in ``box`` (x0, y0, x1, y1): rectangle, ellipse, polygon, bar or stripes.

    It paints label 0 into ``labels``, so drawn over a figure it occludes it.
    """
    canvas = _Canvas(image, labels, 0)
    x0, y0, x1, y1 = box
    center = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    half = np.array([(x1 - x0) / 2, (y1 - y0) / 2])
    color = _random_color(rng, (0.0, 1.0), (0.15, 1.0))
    kind = rng.choice(
        ["rectangle", "ellipse", "polygon", "bar", "stripes"], p=[0.3, 0.25, 0.2, 0.15, 0.1]
    )
    if kind == "rectangle":
        corners = center + half * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])
        canvas.polygon(corners, color)
    elif kind == "ellipse":
        canvas.ellipse(center, half, float(rng.uniform(0, 180)), color)
    elif kind == "polygon":
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(3, 7))))
        canvas.polygon(center + half * np.stack([np.cos(angles), np.sin(angles)], 1), color)
    elif kind == "bar":
        canvas.line(
            (x0, y0),
            (x1, y1),
            max(2.0, float(rng.uniform(0.1, 0.3) * half.min())),
            color,
            outline=False,
        )
    else:
        _draw_stripes(canvas, rng, center, half, color)


def _draw_stripes(canvas: _Canvas, rng, center, half, color: Color) -> None:
    """A rectangle patch of parallel lines in two colours (a texture)."""
    corners = center + half * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])
    canvas.polygon(corners, color)
    other = _random_color(rng)
    step = max(3.0, float(rng.uniform(0.1, 0.3) * half.max()))
    for offset in np.arange(-half[1], half[1], step):
        a, b = center + (-half[0], offset), center + (half[0], offset)
        canvas.line(a, b, max(1.0, step / 3), other, outline=False)


def add_sensor_noise(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` plus Gaussian noise of standard deviation ``sigma`` (grey levels), clipped."""
    noise = rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
