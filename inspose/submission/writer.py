"""Writing a COCO keypoint submission: ``person_keypoints_test-dev2017_<NAME>_results.json`` and a
``.zip`` holding that file at its root, both written atomically (no partial file on failure)."""
import json
import os
import re
import zipfile
from typing import List, Tuple

__all__ = ["results_file_name", "write_submission"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def results_file_name(name: str) -> str:
    """``"InsPose_R_50_36ep"`` -> ``"person_keypoints_test-dev2017_InsPose_R_50_36ep_results.json"``.

    Characters other than letters, digits and ``. _ -`` in ``name`` become ``-``.
    """
    safe = _UNSAFE.sub("-", name).strip("-.")
    if not safe:
        raise ValueError(f"submission name {name!r} has no usable character")
    return f"person_keypoints_test-dev2017_{safe}_results.json"


def _partial(path: str) -> str:
    return f"{path}.{os.getpid()}.partial"


def write_submission(results: List[dict], output_dir: str, name: str) -> Tuple[str, str]:
    """Write the results json and its zip under ``output_dir``; return (json path, zip path)."""
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, results_file_name(name))
    zip_path = os.path.splitext(json_path)[0] + ".zip"
    try:
        with open(_partial(json_path), "w") as f:
            json.dump(results, f, separators=(",", ":"), allow_nan=False)
        with zipfile.ZipFile(_partial(zip_path), "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(_partial(json_path), arcname=os.path.basename(json_path))
        os.replace(_partial(json_path), json_path)
        os.replace(_partial(zip_path), zip_path)
    finally:
        for path in (_partial(json_path), _partial(zip_path)):
            if os.path.exists(path):
                os.remove(path)
    return json_path, zip_path
