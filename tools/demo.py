#!/usr/bin/env python
"""Run InsPose on pictures, a video or a webcam and draw the skeletons.

    python tools/demo.py --config-file CFG --input photo.jpg --output photo_pose.jpg MODEL.WEIGHTS W
    python tools/demo.py --config-file CFG --input 'imgs/*.jpg' more/ one.png --output out/
    python tools/demo.py --config-file CFG --video-input clip.mp4 --output clip_pose.mp4
    python tools/demo.py --config-file CFG --webcam

``--input`` takes files, globs and folders (their .jpg / .jpeg / .png). Pictures go to the
``--output`` folder under their own names (or to ``--output`` itself for a single input given a
picture file name), and ``results.json`` beside them holds COCO keypoint results records plus each
picture's ``file_name`` (``image_id`` is the file's stem when numeric, else its position).
``--video-input`` writes an mp4v video. Without ``--output`` the frames are shown in a window.

Left body parts are blue, right ones orange, the centre magenta (the paper's Figure 2); keypoints
below ``--keypoint-threshold`` are hidden; each person is labelled with its score. Instances score at
least ``--confidence-threshold`` (it sets MODEL.INSPOSE.SCORE_THRESH_TEST; ``--opts`` come after it
and win). Keypoint names, sides and skeleton come from ``--dataset`` or ``DATASETS.TEST[0]``.
"""
import argparse
import glob
import json
import logging
import os
import sys
from typing import Dict, List, Optional

import inspose  # noqa: F401  (first: makes detectron2 importable, registers model and datasets)
import cv2
import numpy as np
import tqdm
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

from inspose.checkpoint import InsPoseCheckpointer
from inspose.config import load_config
from inspose.engine.setup import resolve_device
from inspose.evaluation.results import instances_to_keypoint_results
from inspose.visualization import PoseStyle, draw_poses

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
logger = logging.getLogger("inspose.demo")


class PosePredictor(DefaultPredictor):
    """detectron2's ``DefaultPredictor`` (BGR picture in, test resize, one image's outputs) with the
    weights loaded by ``InsPoseCheckpointer`` (torchvision / HRNet files too)."""

    def __init__(self, cfg):  # DefaultPredictor.__init__ would load with DetectionCheckpointer
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg).eval()
        InsPoseCheckpointer(self.model, cfg=self.cfg).load(cfg.MODEL.WEIGHTS)
        self.aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--input", nargs="+", help="pictures, globs or folders")
    parser.add_argument("--video-input", help="a video file")
    parser.add_argument("--webcam", action="store_true", help="camera 0, shown in a window")
    parser.add_argument("--output", help="output folder, or a file for one picture / the video")
    parser.add_argument("--confidence-threshold", type=float, default=0.3, help="min instance score")
    parser.add_argument("--keypoint-threshold", type=float, default=0.05, help="hide keypoints below")
    parser.add_argument("--dataset", help="dataset whose keypoint metadata to draw with")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides")
    args = parser.parse_args(argv)
    if sum([bool(args.input), bool(args.video_input), args.webcam]) != 1:
        parser.error("give exactly one of --input, --video-input and --webcam")
    return args


def setup_cfg(args):
    threshold = ["MODEL.INSPOSE.SCORE_THRESH_TEST", str(args.confidence_threshold)]
    cfg = load_config(args.config_file, threshold + list(args.opts))
    resolve_device(cfg)
    cfg.freeze()
    return cfg


def pose_style(cfg, dataset: Optional[str]) -> PoseStyle:
    """The drawing style of ``dataset`` (default DATASETS.TEST[0]), checked against the model's K."""
    name = dataset or (cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else None)
    if name is None:
        raise SystemExit("no dataset to take keypoint names from: pass --dataset")
    style = PoseStyle.from_metadata(MetadataCatalog.get(name))
    if len(style.sides) != cfg.MODEL.INSPOSE.NUM_KEYPOINTS:
        raise SystemExit(
            f"dataset {name!r} has {len(style.sides)} keypoints, the model "
            f"{cfg.MODEL.INSPOSE.NUM_KEYPOINTS}: pass the model's --dataset"
        )
    return style


def _is_picture(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def expand_inputs(patterns: List[str]) -> List[str]:
    """Files named, matched by globs, or inside folders (pictures only), in order, without repeats."""
    found = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            names = sorted(os.listdir(pattern))
            found += [os.path.join(pattern, n) for n in names if _is_picture(n)]
        elif any(c in pattern for c in "*?["):
            found += sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        elif os.path.isfile(pattern):
            found.append(pattern)
        else:
            raise SystemExit(f"--input {pattern}: no such file, folder or matching glob")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise SystemExit(f"--input {' '.join(patterns)}: no pictures found")
    return unique


def picture_outputs(paths: List[str], output: str) -> List[str]:
    """Where each picture goes: ``output`` itself for one input named like a picture, else
    ``output``/<name> (a repeated name gets its position appended)."""
    if len(paths) == 1 and _is_picture(output) and not os.path.isdir(output):
        return [output]
    targets, used = [], set()
    for index, path in enumerate(paths):
        name = os.path.basename(path)
        if name in used:
            stem, ext = os.path.splitext(name)
            name = f"{stem}_{index}{ext}"
        used.add(name)
        targets.append(os.path.join(output, name))
    return targets


def image_id_of(path: str, index: int) -> int:
    stem = os.path.splitext(os.path.basename(path))[0]
    return int(stem) if stem.isdigit() else index


def annotate(predictor, style: PoseStyle, image_bgr: np.ndarray, keypoint_threshold: float):
    """(picture with the poses drawn, the model's Instances on the CPU)."""
    instances = predictor(image_bgr)["instances"].to("cpu")
    keypoints, scores = instances.pred_keypoints.numpy(), instances.scores.numpy()
    drawn = draw_poses(image_bgr, keypoints, scores, style, keypoint_threshold)
    return drawn, instances


def show(frame: np.ndarray, wait_ms: int = 1) -> bool:
    """Show ``frame`` in a window (``wait_ms`` 0: until a key); False after Esc or q."""
    cv2.imshow("InsPose", frame)
    return cv2.waitKey(wait_ms) & 0xFF not in (27, ord("q"))


def check_display() -> None:
    """Fail clearly on a Linux machine without a display (cv2.imshow would abort)."""
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not display:
        raise SystemExit("no display to show frames on (DISPLAY is unset): pass --output")


def read_picture(path: str) -> Optional[np.ndarray]:
    """(H, W, 3) BGR picture, or None (logged) when it cannot be read."""
    try:
        return utils.read_image(path, format="BGR")
    except (OSError, ValueError, SyntaxError) as error:
        logger.warning("skipping %s: cannot read it (%s)", path, error)
        return None


def write_results(records: List[Dict], folder: str) -> str:
    path = os.path.join(folder or ".", "results.json")
    with open(path, "w") as f:
        json.dump(records, f)
    return path


def run_pictures(predictor, style, args) -> Dict:
    """Draw every picture of --input; write them and results.json, or show them (no --output)."""
    paths = expand_inputs(args.input)
    targets = picture_outputs(paths, args.output) if args.output else [None] * len(paths)
    records, written = [], []
    jobs = tqdm.tqdm(list(zip(paths, targets)), unit="picture", disable=len(paths) == 1)
    for index, (path, target) in enumerate(jobs):
        image = read_picture(path)
        if image is None:
            continue
        drawn, instances = annotate(predictor, style, image, args.keypoint_threshold)
        for record in instances_to_keypoint_results(instances, image_id_of(path, index)):
            records.append({**record, "file_name": path})
        if target is None:
            if not show(drawn, wait_ms=0):
                break
            continue
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        if not cv2.imwrite(target, drawn):
            raise SystemExit(f"cannot write {target}")
        written.append(target)
    if not args.output:
        return {"pictures": [], "results": None}
    results = write_results(records, os.path.dirname(targets[0]))
    logger.info("%d pictures and %s written (%d persons)", len(written), results, len(records))
    return {"pictures": written, "results": results}


def _video_target(args) -> Optional[str]:
    if not args.output:
        return None
    if os.path.isdir(args.output):
        stem = os.path.splitext(os.path.basename(args.video_input))[0]
        return os.path.join(args.output, f"{stem}.mp4")
    return args.output


def run_video(predictor, style, args) -> Dict:
    video = cv2.VideoCapture(args.video_input)
    if not video.isOpened():
        raise SystemExit(f"--video-input {args.video_input}: cannot open the video")
    width = int(video.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(video.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = video.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(video.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    target = _video_target(args)
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
            drawn, _ = annotate(predictor, style, frame, args.keypoint_threshold)
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


def run_webcam(predictor, style, args) -> Dict:
    camera = cv2.VideoCapture(0)
    if not camera.isOpened():
        raise SystemExit("--webcam: cannot open camera 0")
    frames = 0
    try:
        while True:
            ok, frame = camera.read()
            if not ok or not show(annotate(predictor, style, frame, args.keypoint_threshold)[0]):
                break
            frames += 1
    finally:
        camera.release()
        cv2.destroyAllWindows()
    return {"frames": frames}


def main(argv=None) -> Dict:
    args = parse_args(argv)
    setup_logger(name="inspose")
    if args.webcam or not args.output:
        check_display()
    cfg = setup_cfg(args)
    style = pose_style(cfg, args.dataset)
    predictor = PosePredictor(cfg)
    if args.input:
        return run_pictures(predictor, style, args)
    if args.video_input:
        return run_video(predictor, style, args)
    return run_webcam(predictor, style, args)


if __name__ == "__main__":
    main()
