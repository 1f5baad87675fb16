"""Shared test fixtures.

The genuine COCO-format samples live outside the repository, in ``$INSPOSE_TEST_DATA`` (default
``../shared/data`` next to the repository root); tests that need them skip with a clear message
when the folder is absent.
"""
import json
import os
from pathlib import Path

import pytest

import inspose  # noqa: F401  (compat shim first, then detectron2 registrations)

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("INSPOSE_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def test_data_dir() -> Path:
    """The folder of shared COCO-format samples; skips the test when it does not exist."""
    folder = shared_data_dir()
    if not folder.is_dir():
        pytest.skip(
            f"shared test data not found at {folder}: set INSPOSE_TEST_DATA to the folder holding "
            "coco_kp_mini/, crowdpose_mini/, mmpose_coco/ and ochuman_mini/"
        )
    return folder


@pytest.fixture(scope="session")
def coco_kp_mini(test_data_dir) -> Path:
    """``coco_kp_mini/`` (annotations/person_keypoints_train2017.json, train2017/*.jpg)."""
    folder = test_data_dir / "coco_kp_mini"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing from the shared test data")
    return folder


@pytest.fixture(scope="session")
def crowdpose_mini(test_data_dir) -> Path:
    """``crowdpose_mini/`` (test_crowdpose.json and its images, 14 keypoints)."""
    folder = test_data_dir / "crowdpose_mini"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing from the shared test data")
    return folder


@pytest.fixture(scope="session")
def load_sample_json(test_data_dir):
    """A function: path relative to the shared data -> a freshly parsed dict (skips if absent).

    Each call parses the file again, so a test may modify what it gets.
    """

    def load(relative_path: str) -> dict:
        path = test_data_dir / relative_path
        if not path.is_file():
            pytest.skip(f"{path} is missing from the shared test data")
        with open(path) as f:
            return json.load(f)

    return load
