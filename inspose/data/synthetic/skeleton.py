"""An articulated, human-like figure: proportions, sampled joint angles, and its 17 COCO keypoints.

The figure is built in 3-D and projected orthographically, so left and right stay anatomically
consistent in every view: a figure facing the camera has its left side on the image's right, and a
figure in profile shows its near side in front (see ``render.py``'s depth ordering).

Coordinates: ``x`` to the image's right, ``y`` down the image, ``z`` towards the camera, all in
units of the figure's standing height. Body axes (``left``, ``up``, ``forward``) are unit vectors
in that frame; ``yaw`` turns the body about ``up`` (0 = facing the camera, +90 = facing the image's
right).
"""

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from ..keypoint_spec import COCO_PERSON

__all__ = [
    "KEYPOINT_NAMES",
    "BodyShape",
    "JointAngles",
    "Figure",
    "sample_body_shape",
    "sample_joint_angles",
    "sample_yaw",
    "build_figure",
    "POSE_FAMILIES",
]

KEYPOINT_NAMES: Tuple[str, ...] = COCO_PERSON.names
SIDES = (("left", 1.0), ("right", -1.0))  # (name, sign of the body's `left` axis)


@dataclass(frozen=True)
class BodyShape:
    """Segment lengths, as fractions of the standing height (head top to sole = 1)."""

    head_radius: float = 0.062
    neck: float = 0.035
    torso: float = 0.30  # hip centre to shoulder centre
    shoulder_half_width: float = 0.115
    hip_half_width: float = 0.08
    torso_depth: float = 0.11
    upper_arm: float = 0.17
    forearm: float = 0.15
    thigh: float = 0.245
    shin: float = 0.245
    foot: float = 0.07


@dataclass(frozen=True)
class JointAngles:
    """Joint angles in degrees. Per-side values are ``(left, right)`` pairs.

    ``arm_raise``/``leg_raise``: swing forward from hanging down (180 = straight up / forward-up).
    ``arm_spread``/``leg_spread``: swing sideways away from the body. ``elbow``/``knee``: bend.
    ``elbow_twist``: 0 bends the forearm forward, 90 bends it upward. ``lean_*``: torso tilt.
    """

    lean_forward: float = 0.0
    lean_side: float = 0.0  # positive tilts the torso towards the figure's left
    head_turn: float = 0.0
    head_nod: float = 0.0
    arm_raise: Tuple[float, float] = (0.0, 0.0)
    arm_spread: Tuple[float, float] = (8.0, 8.0)
    elbow: Tuple[float, float] = (10.0, 10.0)
    elbow_twist: Tuple[float, float] = (0.0, 0.0)
    leg_raise: Tuple[float, float] = (0.0, 0.0)
    leg_spread: Tuple[float, float] = (4.0, 4.0)
    knee: Tuple[float, float] = (3.0, 3.0)


@dataclass(frozen=True)
class Figure:
    """A posed figure in the camera frame (units of standing height, pelvis at the origin).

    Attributes:
        keypoints: (17, 3) COCO keypoints, x/y/z.
        joints: named (3,) points used for drawing: pelvis, neck, head, hand and toe tips, ...
        head_axes: (3, 3) rows ``left, up, forward`` of the head, for drawing the face.
        shape: the proportions the figure was built with.
    """

    keypoints: np.ndarray
    joints: Dict[str, np.ndarray]
    head_axes: np.ndarray
    shape: BodyShape


def _uniform_pair(rng: np.random.Generator, low: float, high: float) -> Tuple[float, float]:
    left, right = rng.uniform(low, high, size=2)
    return float(left), float(right)


def sample_body_shape(rng: np.random.Generator) -> BodyShape:
    """Default proportions, each scaled by an independent +-10% jitter (slim to stocky builds)."""
    base = BodyShape()
    build = rng.uniform(0.85, 1.2)  # widths

    def jitter(value: float, spread: float = 0.1) -> float:
        return float(value * rng.uniform(1 - spread, 1 + spread))

    return BodyShape(
        head_radius=jitter(base.head_radius),
        neck=jitter(base.neck, 0.2),
        torso=jitter(base.torso),
        shoulder_half_width=jitter(base.shoulder_half_width * build),
        hip_half_width=jitter(base.hip_half_width * build),
        torso_depth=jitter(base.torso_depth * build),
        upper_arm=jitter(base.upper_arm),
        forearm=jitter(base.forearm),
        thigh=jitter(base.thigh, 0.06),
        shin=jitter(base.shin, 0.06),
        foot=jitter(base.foot),
    )


def _standing(rng):
    """Arms hanging, legs straight."""
    return dict(arm_spread=_uniform_pair(rng, 3, 25), elbow=_uniform_pair(rng, 0, 40))


def _walking(rng):
    """Mid-stride: one leg forward, the opposite arm forward, the trailing knee bent."""
    swing = rng.uniform(15, 35) * rng.choice([-1, 1])
    return dict(
        arm_raise=(-swing * 0.8, swing * 0.8),
        elbow=_uniform_pair(rng, 10, 50),
        leg_raise=(swing, -swing),
        knee=(max(0.0, -swing) * 1.2 + 5, max(0.0, swing) * 1.2 + 5),
    )


def _arms_raised(rng):
    """Arms overhead, or spread sideways (elbows bent forward or up)."""
    overhead = rng.random() < 0.5
    raise_range, spread_range = ((120, 180), (0, 40)) if overhead else ((0, 40), (70, 150))
    return dict(
        arm_raise=_uniform_pair(rng, *raise_range),
        arm_spread=_uniform_pair(rng, *spread_range),
        elbow=_uniform_pair(rng, 0, 100),
        elbow_twist=_uniform_pair(rng, 0, 90),
        leg_spread=_uniform_pair(rng, 2, 20),
    )


def _sitting(rng):
    """Thighs forward, shins down, hands in front (as if on an invisible chair)."""
    return dict(
        arm_raise=_uniform_pair(rng, 10, 50),
        elbow=_uniform_pair(rng, 30, 90),
        leg_raise=_uniform_pair(rng, 75, 100),
        knee=_uniform_pair(rng, 70, 105),
        leg_spread=_uniform_pair(rng, 2, 20),
    )


def _crouching(rng):
    """Deep knee bend with the torso leaning forward."""
    return dict(
        lean_forward=rng.uniform(15, 45),
        arm_raise=_uniform_pair(rng, 20, 80),
        elbow=_uniform_pair(rng, 20, 90),
        leg_raise=_uniform_pair(rng, 95, 130),
        knee=_uniform_pair(rng, 110, 145),
        leg_spread=_uniform_pair(rng, 5, 25),
    )


def _leaning(rng):
    """Torso tilted forward or backward and sideways."""
    return dict(
        lean_forward=rng.uniform(-10, 35),
        lean_side=rng.uniform(-25, 25),
        arm_raise=_uniform_pair(rng, -20, 70),
        arm_spread=_uniform_pair(rng, 5, 60),
        elbow=_uniform_pair(rng, 0, 90),
        leg_spread=_uniform_pair(rng, 2, 25),
    )


def _free(rng):
    """Anything within loose joint limits: the long tail of poses."""
    return dict(
        lean_forward=rng.uniform(-10, 30),
        lean_side=rng.uniform(-15, 15),
        arm_raise=_uniform_pair(rng, -40, 180),
        arm_spread=_uniform_pair(rng, 0, 120),
        elbow=_uniform_pair(rng, 0, 130),
        elbow_twist=_uniform_pair(rng, -30, 90),
        leg_raise=_uniform_pair(rng, -25, 90),
        leg_spread=_uniform_pair(rng, 0, 35),
        knee=_uniform_pair(rng, 0, 110),
    )


# name -> (sampling weight, sampler of JointAngles fields)
POSE_FAMILIES = {
    "standing": (0.22, _standing),
    "walking": (0.22, _walking),
    "arms_raised": (0.16, _arms_raised),
    "sitting": (0.10, _sitting),
    "crouching": (0.08, _crouching),
    "leaning": (0.10, _leaning),
    "free": (0.12, _free),
}


def sample_joint_angles(rng: np.random.Generator) -> JointAngles:
    """A pose from one of ``POSE_FAMILIES`` plus a small head movement."""
    names = list(POSE_FAMILIES)
    weights = np.array([POSE_FAMILIES[name][0] for name in names])
    family = names[rng.choice(len(names), p=weights / weights.sum())]
    fields = POSE_FAMILIES[family][1](rng)
    fields.setdefault("head_turn", float(rng.uniform(-30, 30)))
    fields.setdefault("head_nod", float(rng.uniform(-15, 20)))
    return JointAngles(**fields)


def sample_yaw(rng: np.random.Generator) -> float:
    """Body yaw in degrees: mostly towards the camera, some three-quarter and profile views."""
    magnitude = rng.choice(
        [rng.uniform(0, 30), rng.uniform(30, 65), rng.uniform(65, 90)], p=[0.5, 0.33, 0.17]
    )
    return float(magnitude * rng.choice([-1.0, 1.0]))


def _body_axes(yaw_degrees: float) -> np.ndarray:
    """(3, 3) rows ``left, up, forward`` of a body turned by ``yaw`` (camera frame)."""
    yaw = np.deg2rad(yaw_degrees)
    left = np.array([np.cos(yaw), 0.0, -np.sin(yaw)])
    up = np.array([0.0, -1.0, 0.0])
    forward = np.array([np.sin(yaw), 0.0, np.cos(yaw)])
    return np.stack([left, up, forward])


def _in_frame(axes: np.ndarray, lateral: float, vertical: float, frontal: float) -> np.ndarray:
    """A vector given by its components along ``axes`` (left, up, forward)."""
    return lateral * axes[0] + vertical * axes[1] + frontal * axes[2]


def _swing_direction(
    axes: np.ndarray, side: float, raise_deg: float, spread_deg: float
) -> np.ndarray:
    """Unit direction of a hanging limb swung forward by ``raise`` and outward by ``spread``."""
    swing, spread = np.deg2rad(raise_deg), np.deg2rad(spread_deg)
    return _in_frame(
        axes, side * np.sin(spread), -np.cos(spread) * np.cos(swing), np.cos(spread) * np.sin(swing)
    )


def _bend(direction: np.ndarray, towards: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate unit ``direction`` by ``angle`` in the plane it spans with ``towards``."""
    perpendicular = towards - direction * float(direction @ towards)
    norm = np.linalg.norm(perpendicular)
    if norm < 1e-6:
        return direction
    angle = np.deg2rad(angle_deg)
    return direction * np.cos(angle) + perpendicular / norm * np.sin(angle)


def _torso_axes(body: np.ndarray, lean_forward: float, lean_side: float) -> np.ndarray:
    """Axes of the upper body: the body's axes tilted forward, then sideways."""
    left, up, forward = body
    up, forward = _bend(up, forward, lean_forward), _bend(forward, -up, lean_forward)
    up, left = _bend(up, left, lean_side), _bend(left, -up, lean_side)
    return np.stack([left, up, forward])


def _head_axes(torso: np.ndarray, turn: float, nod: float) -> np.ndarray:
    """Axes of the head: the torso's axes turned towards the head's left, then nodded down."""
    left, up, forward = torso
    forward, left = _bend(forward, left, turn), _bend(left, -forward, turn)
    forward, up = _bend(forward, -up, nod), _bend(up, forward, nod)
    return np.stack([left, up, forward])


def _face_points(center: np.ndarray, head: np.ndarray, radius: float) -> Dict[str, np.ndarray]:
    """Nose, eyes and ears on a spherical head of ``radius`` (all within the sphere's outline)."""
    points = {"nose": center + radius * _in_frame(head, 0.0, -0.15, 0.88)}
    for side, sign in SIDES:
        points[f"{side}_eye"] = center + radius * _in_frame(head, 0.38 * sign, 0.12, 0.72)
        points[f"{side}_ear"] = center + radius * _in_frame(head, 0.86 * sign, 0.02, -0.12)
    return points


def _arm_points(joints, side, sign, torso, shape, angles, index):
    """Adds elbow, wrist and hand tip of one arm to ``joints``."""
    shoulder = joints[f"{side}_shoulder"]
    upper = _swing_direction(torso, sign, angles.arm_raise[index], angles.arm_spread[index])
    twist = np.deg2rad(angles.elbow_twist[index])
    bend_towards = np.cos(twist) * torso[2] + np.sin(twist) * torso[1]
    lower = _bend(upper, bend_towards, angles.elbow[index])
    joints[f"{side}_elbow"] = shoulder + shape.upper_arm * upper
    joints[f"{side}_wrist"] = joints[f"{side}_elbow"] + shape.forearm * lower
    joints[f"{side}_hand"] = joints[f"{side}_wrist"] + 0.045 * lower


def _leg_points(joints, side, sign, body, shape, angles, index):
    """Adds knee, ankle and toe tip of one leg to ``joints``."""
    hip = joints[f"{side}_hip"]
    thigh = _swing_direction(body, sign, angles.leg_raise[index], angles.leg_spread[index])
    backwards_down = -body[2] - 0.3 * body[1]
    shin = _bend(thigh, backwards_down, angles.knee[index])
    joints[f"{side}_knee"] = hip + shape.thigh * thigh
    joints[f"{side}_ankle"] = joints[f"{side}_knee"] + shape.shin * shin
    toe_direction = _bend(shin, body[2], 90.0)
    joints[f"{side}_toe"] = joints[f"{side}_ankle"] + shape.foot * toe_direction


def build_figure(shape: BodyShape, angles: JointAngles, yaw: float, roll: float = 0.0) -> Figure:
    """Pose a figure: joints from the pelvis outwards, then a ``roll`` (degrees) in the image plane.

    Returns:
        A ``Figure`` with (17, 3) keypoints in COCO order.
    """
    body = _body_axes(yaw)
    torso = _torso_axes(body, angles.lean_forward, angles.lean_side)
    head = _head_axes(torso, angles.head_turn, angles.head_nod)
    joints = {"pelvis": np.zeros(3), "neck": shape.torso * torso[1]}
    head_up = _bend(torso[1], torso[2], angles.head_nod * 0.3)
    joints["head"] = joints["neck"] + (shape.neck + shape.head_radius) * head_up
    joints.update(_face_points(joints["head"], head, shape.head_radius))
    for index, (side, sign) in enumerate(SIDES):
        joints[f"{side}_shoulder"] = joints["neck"] + sign * shape.shoulder_half_width * torso[0]
        joints[f"{side}_hip"] = sign * shape.hip_half_width * body[0]
        _arm_points(joints, side, sign, torso, shape, angles, index)
        _leg_points(joints, side, sign, body, shape, angles, index)
    rotation = _image_plane_rotation(roll)
    joints = {name: rotation @ point for name, point in joints.items()}
    keypoints = np.stack([joints[name] for name in KEYPOINT_NAMES])
    return Figure(keypoints=keypoints, joints=joints, head_axes=head @ rotation.T, shape=shape)


def _image_plane_rotation(roll_degrees: float) -> np.ndarray:
    """(3, 3) rotation about the camera's viewing axis."""
    roll = np.deg2rad(roll_degrees)
    cos, sin = np.cos(roll), np.sin(roll)
    return np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
