"""What ``tools/export_model.py`` and ``tools/evaluate_export.py`` do after parsing their arguments."""
import logging
import os

from detectron2.utils.logger import setup_logger

from ..config import ConfigError, load_config
from ..engine.setup import build_model_with_weights, resolve_device
from .evaluate import evaluate_onnx
from .export import ExportError, check_exportable, export_model
from .metadata import MetadataError

__all__ = ["run_export", "run_evaluation", "default_size"]

logger = logging.getLogger("inspose.deploy")


def default_size(cfg):
    """(h, w) of a 4:3 landscape picture after the test resize, the default example input."""
    from .runtime import resized_shape

    return resized_shape(3, 4, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)


def run_export(args) -> int:
    """0 when the file was written; 2 with a one-line message for a config or option error."""
    setup_logger(name="inspose")
    try:
        cfg = load_config(args.config_file, args.opts)
        resolve_device(cfg)
        size = args.size or default_size(cfg)
        check_exportable(cfg, args.dynamic)  # before the model is built
        model = build_model_with_weights(cfg)
        metadata = export_model(cfg, model, args.format, args.output, size, args.dynamic, args.opset, args.optimize)
    except (ConfigError, ExportError) as error:
        print(f"export_model: {error}")
        return 2
    megabytes = os.path.getsize(args.output) / 2**20
    print(
        f"wrote {args.output} ({args.format}, {megabytes:.1f} MB): K = {metadata['num_keypoints']}, "
        f"input {'dynamic' if args.dynamic else 'x'.join(map(str, size))}"
    )
    return 0


def run_evaluation(args) -> int:
    """0 after printing the metrics of every dataset; 2 for a config or model-file error."""
    setup_logger(name="inspose")
    setup_logger(name="detectron2")
    try:
        datasets = list(args.dataset)
        if args.config_file:
            cfg = load_config(args.config_file, args.opts)
            datasets = datasets or list(cfg.DATASETS.TEST)
        for name in datasets:
            output = os.path.join(args.output, name) if args.output else None
            results = evaluate_onnx(args.model, name, output, args.threads)
            print(f"{name}: " + ", ".join(f"{k} {v:.1f}" for k, v in results["keypoints"].items()))
    except (ConfigError, MetadataError) as error:
        print(f"evaluate_export: {error}")
        return 2
    return 0
