"""Training faults: unreadable images in a real run, a NaN loss, an interrupted checkpoint save,
and ``kill -9`` followed by ``--resume``.

Runs ``inspose.engine.Trainer`` (and ``tools/train_net.py`` in a subprocess) for a few iterations
of the tiny CPU model on a tiny synthetic dataset (6 images of 96-128 px, inputs resized to 96).
"""
import json
import logging
import math
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import inspose  # noqa: F401  (before detectron2)
from detectron2.utils.events import get_event_storage

from inspose.checkpoint import InsPoseCheckpointer
from inspose.data import SkippedImages
from inspose.data.synthetic import GeneratorSettings, generate_dataset
from inspose.engine import Trainer
from inspose.engine.hooks import NonFiniteLossError, non_finite_terms

from .conftest import REPO_ROOT
from .model_utils import TINY_CONFIG, register_coco_person, tiny_cfg

SMALL_INPUT = (
    "INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MIN_SIZE_TRAIN_SAMPLING", "choice",
    "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "128",
)  # fmt: skip


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    """A folder for $DETECTRON2_DATASETS: ``synthetic/`` holds 6 train images and their json."""
    root = tmp_path_factory.mktemp("faults_training")
    settings = GeneratorSettings(image_size=(96, 128), crowd_probability=0.0)
    generate_dataset(str(root / "synthetic"), 6, 0, seed=5, settings=settings, workers=1)
    return root


@pytest.fixture(autouse=True)
def quiet_machine(tmp_path, monkeypatch):
    """Repaired annotations cached under tmp_path (one torch thread: tests/conftest.py)."""
    monkeypatch.setenv("INSPOSE_CACHE", str(tmp_path / "cache"))


def register(json_file, image_root) -> str:
    """Register a COCO-person dataset under a new name; returns the name."""
    return register_coco_person(json_file, image_root, prefix="faults")


def train_cfg(name, output_dir, max_iter, checkpoint_period, *opts):
    """The tiny config training on dataset ``name`` for ``max_iter`` iterations, no evaluation."""
    schedule = ("SOLVER.MAX_ITER", max_iter, "SOLVER.STEPS", f"({max_iter - 2},)",
                "SOLVER.WARMUP_ITERS", 1, "SOLVER.CHECKPOINT_PERIOD", checkpoint_period)
    data = ("DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", "()")
    return tiny_cfg(*schedule, *data, *SMALL_INPUT, "OUTPUT_DIR", str(output_dir), *opts)


def train_json(root) -> str:
    return str(root / "synthetic" / "annotations" / "person_keypoints_train.json")


# ---------------------------------------------------------------- a messy dataset trains


def _messy_copy(root, folder):
    """Copy of the train split: image 0 truncated, 1 deleted, 2 without persons, 3 crowd only,
    4 with a person whose keypoint lies left of the image and who has no bbox and no area.

    Returns:
        (json path, image folder, [paths of the two unreadable images]).
    """
    images = folder / "images"
    images.mkdir()
    for name in os.listdir(root / "synthetic" / "train"):
        (images / name).write_bytes((root / "synthetic" / "train" / name).read_bytes())
    coco = json.loads(Path(train_json(root)).read_text())
    ids = [image["id"] for image in coco["images"]]
    unreadable = [images / coco["images"][i]["file_name"] for i in (0, 1)]
    data = unreadable[0].read_bytes()
    unreadable[0].write_bytes(data[: len(data) // 2])  # half a JPEG
    unreadable[1].unlink()
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != ids[2]]
    for annotation in coco["annotations"]:
        annotation["iscrowd"] = int(annotation["image_id"] == ids[3])
    person = next(a for a in coco["annotations"] if a["image_id"] == ids[4])
    person["keypoints"][person["keypoints"][2::3].index(2) * 3] = -5.0
    del person["bbox"], person["area"]
    path = folder / "messy.json"
    path.write_text(json.dumps(coco))
    return str(path), images, [str(p) for p in unreadable]


def test_training_skips_unreadable_images_and_trains_on_the_rest(dataset_root, tmp_path, caplog):
    json_file, images, unreadable = _messy_copy(dataset_root, tmp_path)
    name = register(json_file, images)
    # Every image reaches the model (none filtered), in sampler order: the first 3 batches of 2
    # are a permutation of the 6 images, so both unreadable ones are met.
    cfg = train_cfg(name, tmp_path / "out", 4, 1000, "DATALOADER.FILTER_EMPTY_ANNOTATIONS", False,
                    "DATALOADER.ASPECT_RATIO_GROUPING", False)  # fmt: skip
    before = SkippedImages.count
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    with caplog.at_level(logging.WARNING, logger="inspose.data.image_io"):
        trainer.train()
    assert trainer.iter == 4  # detectron2 sets iter = max_iter when training completed
    assert math.isfinite(trainer.storage.history("total_loss").latest())
    skips = [r.getMessage() for r in caplog.records if "Skipping an unreadable" in r.getMessage()]
    assert SkippedImages.count - before == len(skips) >= 2
    assert any(f"image {unreadable[0]} " in s and "cannot be decoded" in s for s in skips)
    assert any(f"image {unreadable[1]} " in s and "does not exist" in s for s in skips)
    assert f"({before + len(skips)} so far)" in skips[-1]


# ---------------------------------------------------------------- a NaN loss


class NaNAtIteration:
    """A criterion giving ``term`` the value NaN at iteration ``k`` (the real losses otherwise).

    Keeps a copy of the model's weights as they were when the NaN appeared.
    """

    def __init__(self, model, k: int, term: str):
        self.criterion, self.model, self.k, self.term = model.criterion, model, k, term
        self.weights_at_k = None

    def __call__(self, *args, **kwargs):
        losses = self.criterion(*args, **kwargs)
        if get_event_storage().iter == self.k:
            losses[self.term] = losses[self.term] * math.nan
            self.weights_at_k = {k: v.clone() for k, v in self.model.state_dict().items()}
        return losses


def test_non_finite_terms_are_named():
    losses = {"loss_a": torch.tensor(1.0), "loss_c": torch.tensor(math.inf),
              "loss_b": torch.tensor(math.nan)}  # fmt: skip
    assert non_finite_terms(losses) == ["loss_b", "loss_c"]
    assert non_finite_terms({"loss_a": torch.tensor(0.5)}) == []


def _terms_seen_by(rank: int, port: int, results) -> None:
    """One process of a 2-process gloo group; only rank 1 has a NaN term."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        losses = {"loss_a": torch.tensor(1.0), "loss_b": torch.tensor(math.nan if rank else 2.0)}
        results.put((rank, non_finite_terms(losses)))
    finally:
        dist.destroy_process_group()


def test_every_process_sees_a_term_that_is_non_finite_on_one():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [context.Process(target=_terms_seen_by, args=(r, port, results)) for r in (0, 1)]
    for process in processes:
        process.start()
    seen = dict(results.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    assert seen == {0: ["loss_b"], 1: ["loss_b"]}  # so all processes stop at the same iteration


def test_nan_loss_stops_training_and_keeps_the_last_checkpoint(dataset_root, tmp_path, monkeypatch):
    name = register(train_json(dataset_root), dataset_root / "synthetic" / "train")
    out = tmp_path / "out"
    trainer = Trainer(train_cfg(name, out, 6, 2))
    trainer.resume_or_load(resume=False)
    nan_loss = NaNAtIteration(trainer.model, k=3, term="loss_kpnet")
    monkeypatch.setattr(trainer.model, "criterion", nan_loss)

    with pytest.raises(NonFiniteLossError) as error:
        trainer.train()

    message = str(error.value)
    assert message.startswith("Loss term loss_kpnet became NaN or infinite at iteration 3 (")
    assert "loss_kpnet=nan" in message and "no weights were updated from it" in message
    last = out / "model_0000001.pth"  # written after iteration 1 (period 2)
    assert message.endswith(f"Last checkpoint: {last} (continue from it with --resume).")
    assert (out / "last_checkpoint").read_text() == "model_0000001.pth"
    assert sorted(p for p in os.listdir(out) if p.endswith(".pth")) == ["model_0000001.pth"]
    saved = torch.load(last, map_location="cpu")
    assert saved["iteration"] == 1
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())
    for key, value in trainer.model.state_dict().items():  # no step was taken with the NaN
        assert torch.equal(value, nan_loss.weights_at_k[key]), key


# ---------------------------------------------------------------- interrupted checkpoint saves


def _write_half_then_fail(data, f):
    f.write(b"PK\x03\x04 only part of a checkpoint")
    raise OSError(28, "No space left on device")


@pytest.fixture
def checkpointer(tmp_path):
    torch.manual_seed(0)
    return InsPoseCheckpointer(torch.nn.Linear(3, 2), str(tmp_path))


def test_interrupted_save_keeps_the_previous_checkpoint(checkpointer, tmp_path, monkeypatch):
    checkpointer.save("model_0000001", iteration=1)
    checkpointer.save("model_best", iteration=1)
    kept = ["model_0000001.pth", "model_best.pth"]
    good = {name: (tmp_path / name).read_bytes() for name in kept}
    monkeypatch.setattr(torch, "save", _write_half_then_fail)

    for name in ("model_0000003", "model_best"):  # a new file, and one that is overwritten
        with pytest.raises(OSError, match="No space left"):
            checkpointer.save(name, iteration=3)

    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", *kept]
    assert {name: (tmp_path / name).read_bytes() for name in good} == good
    assert (tmp_path / "last_checkpoint").read_text() == "model_best.pth"
    assert torch.load(tmp_path / "model_best.pth")["iteration"] == 1


def test_interrupted_tag_keeps_the_previous_tag(checkpointer, tmp_path, monkeypatch):
    checkpointer.save("model_0000001")
    replace = os.replace

    def fail_on_tag(source, destination):
        if str(destination).endswith("last_checkpoint"):
            raise KeyboardInterrupt  # killed between writing the new tag and the rename
        replace(source, destination)

    monkeypatch.setattr(os, "replace", fail_on_tag)
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save("model_0000003")
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    files = ["last_checkpoint", "model_0000001.pth", "model_0000003.pth"]
    assert sorted(os.listdir(tmp_path)) == files


def test_save_removes_what_a_killed_save_left(checkpointer, tmp_path):
    (tmp_path / ".model_0000005.pth.partial").write_bytes(b"half a checkpoint")
    checkpointer.save("model_0000007")
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000007.pth"]


# ---------------------------------------------------------------- kill -9, then --resume

MAX_ITER = 8


def _train_net_command(output_dir, *extra):
    opts = ["DATASETS.TRAIN", "('synthetic_keypoints_train',)", "DATASETS.TEST", "()",
            "SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.STEPS", "(5,)", "SOLVER.WARMUP_ITERS", "1",
            "SOLVER.CHECKPOINT_PERIOD", "2", "OUTPUT_DIR", str(output_dir),
            *SMALL_INPUT]  # fmt: skip
    script = str(REPO_ROOT / "tools" / "train_net.py")
    return [sys.executable, script, "--config-file", str(REPO_ROOT / TINY_CONFIG), *extra, *opts]


def _environment(dataset_root, tmp_path):
    env = dict(os.environ, DETECTRON2_DATASETS=str(dataset_root), CUDA_VISIBLE_DEVICES="")
    env.update(INSPOSE_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _kill_after_first_checkpoint(command, env, output_dir, log, timeout=240):
    """Start ``command``; SIGKILL it as soon as ``last_checkpoint`` exists."""
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + timeout
    try:
        while not (output_dir / "last_checkpoint").exists():
            assert process.poll() is None, f"training ended before a checkpoint: see {log.name}"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    return process.returncode


@pytest.mark.slow
def test_kill_9_then_resume_finishes_the_schedule(dataset_root, tmp_path):
    out, env = tmp_path / "out", _environment(dataset_root, tmp_path)
    with open(tmp_path / "first.log", "w") as log:
        code = _kill_after_first_checkpoint(_train_net_command(out), env, out, log)
    assert code == -signal.SIGKILL
    tagged = out / (out / "last_checkpoint").read_text()
    iteration = torch.load(tagged, map_location="cpu")["iteration"]  # a complete file

    resumed = subprocess.run(_train_net_command(out, "--resume"), cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    starts = re.findall(r"Starting training from iteration (\d+)", resumed.stdout + resumed.stderr)
    assert starts == [str(iteration + 1)]
    final = torch.load(out / "model_final.pth", map_location="cpu")
    assert final["iteration"] == MAX_ITER - 1
    metrics = [json.loads(line) for line in open(out / "metrics.json")]
    assert metrics[-1]["iteration"] == MAX_ITER - 1
    assert metrics[-1]["lr"] == pytest.approx(0.01 * 0.1)  # past the step at 5: the same schedule
