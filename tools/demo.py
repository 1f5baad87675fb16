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
The logic is ``inspose.demo``; this file is the command line.
"""
import argparse
from typing import Dict

import inspose  # noqa: F401  (first: makes detectron2 importable, registers model and datasets)
from inspose.demo import PosePredictor, check_display, pose_style, run_pictures, run_video, run_webcam
from inspose.engine import setup_cfg, setup_loggers


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


def main(argv=None) -> Dict:
    args = parse_args(argv)
    setup_loggers(names=("inspose",))
    if args.webcam or not args.output:
        check_display()
    threshold = ["MODEL.INSPOSE.SCORE_THRESH_TEST", str(args.confidence_threshold)]
    cfg = setup_cfg(args, extra_opts=threshold, default_setup_fn=None)
    style = pose_style(cfg, args.dataset)
    predictor = PosePredictor(cfg)
    if args.input:
        return run_pictures(predictor, style, args.input, args.output, args.keypoint_threshold)
    if args.video_input:
        return run_video(predictor, style, args.video_input, args.output, args.keypoint_threshold)
    return run_webcam(predictor, style, args.keypoint_threshold)


if __name__ == "__main__":
    main()
