"""Shared test fixtures and the suite's reporting.

The genuine COCO-format samples live outside the repository, in ``$INSPOSE_TEST_DATA`` (default
``../shared/data`` next to the repository root); tests that need them skip with a clear message
when the folder is absent, and the terminal summary counts those skips in one line.

Every test runs with one torch thread (``$INSPOSE_TEST_THREADS`` to change it): the test machine's
two cores are shared, and with several threads waiting for each other the suite's tiny ops run
slower, not faster. ``make test`` runs the suite on one pytest-xdist worker per core
(``-n auto --dist loadgroup``); the tests that share a session-trained model (``TRAINED_FIXTURES``)
form one xdist group per model, so each worker trains a model only if its group runs there, and each
model is trained once. Tests marked ``slow`` (multi-minute training runs, subprocess jobs) are left
out by ``make test-fast`` (``pytest -m "not slow"``); ``make test`` runs them all.
"""
import json
import logging
import os
from pathlib import Path

import pytest
import torch

import inspose  # noqa: F401  (compat shim first, then detectron2 registrations)
from inspose.data import COCO_PERSON, KeypointSpec, register_keypoint_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = "shared test data"  # in every skip message about it; the summary counts them
TORCH_THREADS = int(os.environ.get("INSPOSE_TEST_THREADS", "1"))

# CrowdPose's 14 keypoints (crowdpose_mini/test_crowdpose.json); its sigmas as published / 10.
CROWDPOSE = KeypointSpec(
    names=(
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
        "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
        "right_ankle", "head", "neck",
    ),  # fmt: skip
    flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    skeleton=((12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (0, 6), (1, 7),
              (6, 8), (8, 10), (7, 9), (9, 11)),  # fmt: skip
    oks_sigmas=tuple(s / 10 for s in (.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89,
                                      .89, .79, .79)),  # fmt: skip
)


def shared_data_dir() -> Path:
    return Path(os.environ.get("INSPOSE_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))


# ---------------------------------------------------------------- pytest-xdist groups

# Session fixtures that train a model (minutes each): their tests share one xdist group per fixture.
TRAINED_FIXTURES = ("overfit_run", "release_overfit_run", "briefly_trained")


def _trained_fixture(item):
    """The first ``TRAINED_FIXTURES`` name ``item`` uses (directly or through a fixture), or None."""
    return next((name for name in TRAINED_FIXTURES if name in item.fixturenames), None)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config, items):
    """Each test that uses a ``TRAINED_FIXTURES`` model joins that model's xdist group, so that
    under ``--dist loadgroup`` a model is trained on one worker only; those tests come first (in
    ``TRAINED_FIXTURES`` order), so that the long trainings start at once, on different workers,
    while the many short tests fill the gaps."""
    if not config.getoption("loadgroup", default=False):
        return
    for item in items:
        name = _trained_fixture(item)
        if name:
            item.add_marker(pytest.mark.xdist_group(name))
    rank = {name: i for i, name in enumerate(TRAINED_FIXTURES)}
    items.sort(key=lambda item: rank.get(_trained_fixture(item), len(rank)))  # stable


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    """Fails the run when pytest-xdist did not group the tests (its ``@group`` nodeid suffix is
    missing; pytest 9 ignores it, hence ``pytest<9`` in the Makefile): each worker would train its
    own copy of every model, several minutes each."""
    if not session.config.getoption("loadgroup", default=False):
        return
    ungrouped = [i.nodeid for i in session.items if _trained_fixture(i) and "@" not in i.nodeid]
    if ungrouped:
        raise pytest.UsageError(
            f"pytest-xdist --dist loadgroup did not group {len(ungrouped)} tests that share a trained "
            f"model (e.g. {ungrouped[0]}); install pytest<9 (make setup does) or run without -n "
            "(make test TEST_WORKERS=0)"
        )


def pytest_configure(config):
    """Under pytest-xdist, subprocesses the tests start (train_net, sweep, ...) use this worker's
    share of the cores: torch threads that outnumber the cores slow every process several-fold."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        share = max(1, (os.cpu_count() or 1) // int(workers))
        os.environ.setdefault("OMP_NUM_THREADS", str(share))


# ---------------------------------------------------------------- torch threads


@pytest.fixture(scope="session", autouse=True)
def torch_threads():
    """``TORCH_THREADS`` torch threads (default 1) for the whole session, restored at its end."""
    before = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    yield TORCH_THREADS
    torch.set_num_threads(before)


# ---------------------------------------------------------------- logger state

# Loggers that detectron2's setup_logger (called by Trainer, the sweep, the quick-start and the
# deploy tools) stops from propagating: caplog, which listens on the root logger, would then see
# nothing from them in every later test of the same process, whatever order the tests run in.
PROJECT_LOGGERS = ("detectron2", "inspose", "fvcore")


@pytest.fixture(autouse=True)
def project_loggers_restored():
    """Each test leaves the level and propagation of ``PROJECT_LOGGERS`` as it found them."""
    loggers = [logging.getLogger(name) for name in PROJECT_LOGGERS]
    saved = [(logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, (level, propagate) in zip(loggers, saved):
        logger.setLevel(level)
        logger.propagate = propagate


# ---------------------------------------------------------------- the shared samples


@pytest.fixture(scope="session")
def test_data_dir() -> Path:
    """The folder of shared COCO-format samples; skips the test when it does not exist."""
    folder = shared_data_dir()
    if not folder.is_dir():
        pytest.skip(
            f"{SHARED_DATA} not found at {folder}: set INSPOSE_TEST_DATA to the folder holding "
            "coco_kp_mini/, crowdpose_mini/, mmpose_coco/ and ochuman_mini/"
        )
    return folder


@pytest.fixture(scope="session")
def coco_kp_mini(test_data_dir) -> Path:
    """``coco_kp_mini/`` (annotations/person_keypoints_train2017.json, train2017/*.jpg)."""
    folder = test_data_dir / "coco_kp_mini"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing from the {SHARED_DATA}")
    return folder


@pytest.fixture(scope="session")
def crowdpose_mini(test_data_dir) -> Path:
    """``crowdpose_mini/`` (test_crowdpose.json and its images, 14 keypoints)."""
    folder = test_data_dir / "crowdpose_mini"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing from the {SHARED_DATA}")
    return folder


@pytest.fixture(scope="session")
def load_sample_json(test_data_dir):
    """A function: path relative to the shared data -> a freshly parsed dict (skips if absent).

    Each call parses the file again, so a test may modify what it gets.
    """

    def load(relative_path: str) -> dict:
        path = test_data_dir / relative_path
        if not path.is_file():
            pytest.skip(f"{path} is missing from the {SHARED_DATA}")
        with open(path) as f:
            return json.load(f)

    return load


# ---------------------------------------------------------------- registered datasets


def register_once(name: str, json_file, image_root, spec: KeypointSpec = COCO_PERSON) -> str:
    """Register a COCO-format keypoint dataset under ``name`` unless it already is; returns it."""
    from detectron2.data import DatasetCatalog

    if name not in DatasetCatalog.list():
        register_keypoint_dataset(name, str(json_file), str(image_root), spec)
    return name


@pytest.fixture(scope="session")
def coco_kp_mini_dataset(coco_kp_mini) -> str:
    """Name of the registered coco_kp_mini train2017 samples (COCO person, 17 keypoints)."""
    json_file = coco_kp_mini / "annotations" / "person_keypoints_train2017.json"
    return register_once("test_coco_kp_mini", json_file, coco_kp_mini / "train2017")


@pytest.fixture(scope="session")
def crowdpose_mini_dataset(crowdpose_mini) -> str:
    """Name of the registered crowdpose_mini samples (``CROWDPOSE``, 14 keypoints)."""
    json_file = crowdpose_mini / "test_crowdpose.json"
    return register_once("test_crowdpose_mini", json_file, crowdpose_mini, CROWDPOSE)


# ---------------------------------------------------------------- trained tiny models


@pytest.fixture(scope="session")
def overfit_run(coco_kp_mini, tmp_path_factory):
    """The tiny model overfitted on four coco_kp_mini images (``trained_models.overfit_opts``);
    its dataset is the config's DATASETS.TEST. About 4 minutes on 2 cores, once per session."""
    from .trained_models import overfit_opts, overfit_subset, train_tiny

    folder = tmp_path_factory.mktemp("overfit")
    name = register_once("test_overfit_coco4", overfit_subset(coco_kp_mini, folder), coco_kp_mini / "train2017")
    return train_tiny(overfit_opts(name), folder / "output")


@pytest.fixture(scope="session")
def release_overfit_run(coco_kp_mini, tmp_path_factory):
    """``overfit_run``'s images and iterations with every release component on
    (``trained_models.release_overfit_opts``), once per session."""
    from .trained_models import overfit_subset, release_overfit_opts, train_tiny

    folder = tmp_path_factory.mktemp("release_overfit")
    name = register_once("test_overfit_coco4", overfit_subset(coco_kp_mini, folder), coco_kp_mini / "train2017")
    return train_tiny(release_overfit_opts(name), folder / "output")


@pytest.fixture(scope="session")
def briefly_trained(coco_kp_mini_dataset, crowdpose_mini_dataset, tmp_path_factory):
    """A function K (17 or 14), depth -> ``TrainedRun`` of a few dozen iterations on coco_kp_mini
    (K = 17) or crowdpose_mini (K = 14), each trained once per session."""
    from .trained_models import brief_opts, train_tiny

    datasets = {17: coco_kp_mini_dataset, 14: crowdpose_mini_dataset}
    runs = {}

    def get(num_keypoints: int, depth: int = 3):
        key = (num_keypoints, depth)
        if key not in runs:
            opts = brief_opts(datasets[num_keypoints], num_keypoints) + ["MODEL.INSPOSE.KPNET_DEPTH", depth]
            runs[key] = train_tiny(opts, tmp_path_factory.mktemp(f"brief_k{num_keypoints}_d{depth}"))
        return runs[key]

    return get


# ---------------------------------------------------------------- reporting


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr or "")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    """One line counting the tests skipped because the shared test data is absent.

    A wrapper around the other summaries, so that the line comes after the short test summary,
    just above pytest's final counts.
    """
    yield
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if SHARED_DATA in _skip_reason(r)]
    if not skipped:
        return
    folder = shared_data_dir()
    count = f"{len(skipped)} test{'s' if len(skipped) != 1 else ''} skipped"
    if folder.is_dir():
        message = f"{count}: files missing from the {SHARED_DATA} at {folder}"
    else:
        message = f"{count}: {SHARED_DATA} not found at {folder}; set INSPOSE_TEST_DATA"
    terminalreporter.write_sep("-", SHARED_DATA, yellow=True)
    terminalreporter.write_line(message, yellow=True)
