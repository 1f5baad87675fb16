#!/usr/bin/env python
"""Write a COCO test-dev keypoint submission (results json + zip) for trained weights.

    python tools/make_submission.py --config-file configs/InsPose_R_50_36ep.yaml \
        --output submissions/ MODEL.WEIGHTS output/InsPose_R_50_36ep/model_final.pth
    python tools/make_submission.py --config-file CFG --output DIR --name my-model --num-gpus 8 \
        MODEL.WEIGHTS model.pth
    python tools/make_submission.py --config-file CFG --output DIR \
        --image-info my_images.json --image-root my_images/ MODEL.WEIGHTS model.pth

Writes DIR/person_keypoints_test-dev2017_<NAME>_results.json and the .zip to upload. Trailing
``KEY VALUE`` pairs override the config. Exits 1 with a message (and writes nothing) when an image
is missing or corrupt or the results do not validate.
"""
import sys

import inspose  # noqa: F401  (first: compat shim, then detectron2 registrations)
from inspose.submission.make import main

if __name__ == "__main__":
    sys.exit(main())
