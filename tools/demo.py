#!/usr/bin/env python
"""Run InsPose on pictures, a video or a webcam and draw the skeletons.

    python tools/demo.py --config-file CFG --input photo.jpg --output photo_pose.jpg --opts MODEL.WEIGHTS W
    python tools/demo.py --config-file CFG --input 'imgs/*.jpg' more/ one.png --output out/ --opts MODEL.WEIGHTS W
    python tools/demo.py --config-file CFG --video-input clip.mp4 --output clip_pose.mp4 --opts MODEL.WEIGHTS W
    python tools/demo.py --config-file CFG --webcam --opts MODEL.WEIGHTS W
    python tools/demo.py --backend onnxruntime --model inspose.onnx --input photo.jpg --output out/

``--input`` takes files, globs and folders (their .jpg / .jpeg / .png). Pictures go to the
``--output`` folder (created if needed) under their own names (or to ``--output`` itself for a
single input given a picture file name), and ``results.json`` beside them holds COCO keypoint
results records plus each picture's ``file_name`` (``image_id`` is the file's stem when numeric,
else its position). An unreadable picture is skipped with a warning; when none can be read the
tool exits 1. ``--video-input`` writes an mp4v video. Without ``--output`` the frames are shown.

Left body parts are blue, right ones orange, the centre magenta (the paper's Figure 2); keypoints
below ``--keypoint-threshold`` are hidden; each person is labelled with its score (labels never
cover each other). Persons are kept when their final score, the one drawn and written, is at least
``--confidence-threshold``. Keypoint names, sides and skeleton come from ``--dataset`` or
``DATASETS.TEST[0]`` (with ``--backend onnxruntime``: from the exported file, no config needed).
Untrained weights (an empty MODEL.WEIGHTS, ImageNet weights) are refused unless
``--allow-untrained``. The logic is ``inspose.demo``; this file is the command line.
"""
import argparse
import sys
from typing import Dict

TOOL = "demo"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", metavar="FILE", help="the model's config (--backend pytorch)")
    parser.add_argument("--backend", choices=("pytorch", "onnxruntime"), default="pytorch")
    parser.add_argument("--model", metavar="FILE", help="the .onnx file of tools/export_model.py (onnxruntime)")
    parser.add_argument("--input", nargs="+", help="pictures, globs or folders")
    parser.add_argument("--video-input", help="a video file")
    parser.add_argument("--webcam", action="store_true", help="camera 0, shown in a window")
    parser.add_argument("--output", help="output folder, or a file for one picture / the video")
    parser.add_argument("--confidence-threshold", type=float, default=0.3, help="min final instance score")
    parser.add_argument("--keypoint-threshold", type=float, default=0.05, help="hide keypoints below")
    parser.add_argument("--dataset", help="dataset whose keypoint metadata to draw with")
    parser.add_argument(
        "--allow-untrained", action="store_true", help="run even when MODEL.WEIGHTS holds no trained heads"
    )
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if sum([bool(args.input), bool(args.video_input), args.webcam]) != 1:
        parser.error("give exactly one of --input, --video-input and --webcam")
    if args.backend == "onnxruntime" and not args.model:
        parser.error("--backend onnxruntime needs --model FILE (an .onnx file of tools/export_model.py)")
    if args.backend == "pytorch" and not args.config_file:
        parser.error("--backend pytorch needs --config-file FILE")
    return args


def pytorch_backend(args):
    """(predictor, style) of the config and its weights, refused when untrained."""
    from inspose.demo import PosePredictor, pose_style
    from inspose.engine import setup_cfg
    from inspose.engine.weights import check_trained_weights

    threshold = ["MODEL.INSPOSE.SCORE_THRESH_TEST", str(args.confidence_threshold)]  # cls >= final
    cfg = setup_cfg(args, extra_opts=threshold, default_setup_fn=None)
    if not args.allow_untrained:
        check_trained_weights(cfg.MODEL.WEIGHTS)
    return PosePredictor(cfg), pose_style(cfg, args.dataset)


def onnxruntime_backend(args):
    """(predictor, style) of an exported ONNX file, drawn with the metadata it carries."""
    from inspose.demo import export_style
    from inspose.deploy.runtime import OnnxPosePredictor

    predictor = OnnxPosePredictor(args.model)
    return predictor, export_style(predictor.metadata)


def run(args) -> Dict:
    from inspose.demo import ConfidentPoses, check_display, run_pictures, run_video, run_webcam
    from inspose.engine import setup_loggers

    setup_loggers(names=("inspose",))
    if args.webcam or not args.output:
        check_display()
    backend, style = (onnxruntime_backend if args.backend == "onnxruntime" else pytorch_backend)(args)
    predictor = ConfidentPoses(backend, args.confidence_threshold)
    if args.input:
        return run_pictures(predictor, style, args.input, args.output, args.keypoint_threshold)
    if args.video_input:
        return run_video(predictor, style, args.video_input, args.output, args.keypoint_threshold)
    return run_webcam(predictor, style, args.keypoint_threshold)


def main(argv=None) -> Dict:
    args = parse_args(argv)
    import inspose  # noqa: F401  (first: makes detectron2 importable, registers model and datasets)
    from inspose.engine.user_errors import exit_on_user_error

    return exit_on_user_error(TOOL, lambda: run(args))


if __name__ == "__main__":
    main()
    sys.exit(0)
