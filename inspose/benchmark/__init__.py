"""Speed and memory of InsPose against detectron2's Keypoint R-CNN (``tools/benchmark.py``).

One concern per module:
- ``timing``: timers that synchronise the device, summaries (median, quartiles, min / max),
  method instrumentation, the device's description;
- ``inputs``: the benchmark image and synthetic persons (keypoints and boxes) for training;
- ``forcing``: fixing the number of persons that reach each model's keypoint stage, counting
  them;
- ``inspose_latency`` / ``keypoint_rcnn``: building the two models and timing their inference;
- ``kpnet_table``: the batched KP-Nets against the per-instance loop and the predictor's chunked
  path;
- ``training``: one training step and its peak memory, in a subprocess per model;
- ``flops``: parameters, FLOPs (fvcore plus the analytic KP-Net count) and the device's conv rate;
- ``tables``: markdown rendering; ``runner``: the whole benchmark as one JSON-ready dict.

Nothing is imported here, so ``python -m inspose.benchmark.training`` starts without the rest.
"""
