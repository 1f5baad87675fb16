"""The demo's three sources: pictures (written with ``results.json``, or shown), a video (written
or shown) and a webcam (shown), each frame drawn by ``annotate``."""
import json
import logging
import os
import sys
from typing import Dict, List, Optional

import cv2
import numpy as np
import tqdm

from ..visualization import PoseStyle
from .inputs import expand_inputs, image_id_of, picture_outputs, read_picture, video_output
from .poses import pose_records
from .predictor import annotate

__all__ = ["check_display", "run_pictures", "run_video", "run_webcam", "show", "write_results"]

logger = logging.getLogger("inspose.demo")


def show(frame: np.ndarray, wait_ms: int = 1) -> bool:
    """Show ``frame`` in a window (``wait_ms`` 0: until a key); False after Esc or q."""
    cv2.imshow("InsPose", frame)
    return cv2.waitKey(wait_ms) & 0xFF not in (27, ord("q"))


def check_display() -> None:
    """Fail clearly on a Linux machine without a display (cv2.imshow would abort)."""
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not display:
        raise SystemExit("no display to show frames on (DISPLAY is unset): pass --output")


def write_results(records: List[Dict], folder: str) -> str:
    """Write COCO keypoint results records to ``folder``/results.json; return its path."""
    os.makedirs(folder or ".", exist_ok=True)
    path = os.path.join(folder or ".", "results.json")
    with open(path, "w") as f:
        json.dump(records, f)
    return path


def run_pictures(
    predictor, style: PoseStyle, inputs: List[str], output: Optional[str], keypoint_threshold: float
) -> Dict:
    """Draw every picture of ``inputs`` (files, globs, folders); write them and results.json under
    ``output``, or show them one by one (no ``output``). Unreadable pictures are skipped with a
    warning; when none could be read the run stops (SystemExit, non-zero). Returns {"pictures",
    "results"} paths."""
    paths = expand_inputs(inputs)
    targets = picture_outputs(paths, output) if output else [None] * len(paths)
    records, written, read = [], [], 0
    jobs = tqdm.tqdm(list(zip(paths, targets)), unit="picture", disable=len(paths) == 1)
    for index, (path, target) in enumerate(jobs):
        image = read_picture(path)
        if image is None:
            continue
        read += 1
        drawn, poses = annotate(predictor, style, image, keypoint_threshold)
        for record in pose_records(poses, image_id_of(path, index)):
            records.append({**record, "file_name": path})
        if target is None:
            if not show(drawn, wait_ms=0):
                break
            continue
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        if not cv2.imwrite(target, drawn):
            raise SystemExit(f"cannot write {target}")
        written.append(target)
    if read == 0:
        raise SystemExit(f"none of the {len(paths)} inputs could be read as a picture")
    if not output:
        return {"pictures": [], "results": None}
    results = write_results(records, os.path.dirname(targets[0]))
    logger.info("%d pictures and %s written (%d persons)", len(written), results, len(records))
    return {"pictures": written, "results": results}


def run_video(
    predictor, style: PoseStyle, video_input: str, output: Optional[str], keypoint_threshold: float
) -> Dict:
    """Draw every frame of ``video_input``; write an mp4v video (``video_output``) or show it.
    Returns {"video": path or None, "frames": count}."""
    video = cv2.VideoCapture(video_input)
    if not video.isOpened():
        raise SystemExit(f"--video-input {video_input}: cannot open the video")
    width = int(video.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(video.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = video.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(video.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    target = video_output(video_input, output)
    writer = None
    if target is not None:
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        writer = cv2.VideoWriter(target, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    frames = 0
    with tqdm.tqdm(total=total, unit="frame") as bar:
        while True:
            ok, frame = video.read()
            if not ok:
                break
            drawn, _ = annotate(predictor, style, frame, keypoint_threshold)
            frames += 1
            bar.update(1)
            if writer is not None:
                writer.write(drawn)
            elif not show(drawn):
                break
    video.release()
    if writer is not None:
        writer.release()
    return {"video": target, "frames": frames}


def run_webcam(predictor, style: PoseStyle, keypoint_threshold: float) -> Dict:
    """Show camera 0's frames with their poses until Esc or q; returns {"frames": count}."""
    camera = cv2.VideoCapture(0)
    if not camera.isOpened():
        raise SystemExit("--webcam: cannot open camera 0")
    frames = 0
    try:
        while True:
            ok, frame = camera.read()
            if not ok or not show(annotate(predictor, style, frame, keypoint_threshold)[0]):
                break
            frames += 1
    finally:
        camera.release()
        cv2.destroyAllWindows()
    return {"frames": frames}
