"""Deployment: the whole model exported (``export``, ``graph``) and run without it (``runtime``).

- ``graph.InsPoseInference``: inference from a resized image to padded final detections, one module;
- ``export.export_model``: ONNX (dynamo exporter) or ``torch.export`` files with their metadata;
- ``runtime.OnnxPosePredictor``: ONNX Runtime on a BGR image, needing neither torch nor detectron2;
- ``evaluate``: pycocotools OKS AP of an exported model on a registered dataset.

This package's ``__init__`` imports nothing, so the runtime loads without torch.
"""
