"""Distributed training on torch.distributed (gloo) on the CPU: N processes behave as one.

One gloo job of 2 processes (``inspose.engine.launch.launch_cpu``) runs, in this order:
- losses and DDP gradients of one image per process, to compare with one process on both images
  (identical weights loaded from a file, no positive budget, so no randomness);
- SyncBN on the CPU: torch refuses it, the trainer says so up front, detectron2's naiveSyncBN works;
- ``Trainer.test`` of a fixed checkpoint on a synthetic dataset registered in each process, to
  compare with one process (predictions and the 10 metrics);
- two DDP steps where one process's image has no person (DDP needs a gradient for every
  parameter in every step).
Each job writes its result to a file as soon as it is done, so a failing job fails its own tests.
Then ``tools/train_net.py`` trains end to end with ``--num-gpus 2`` and as two "machines".
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.layers import get_norm
from detectron2.modeling import build_model
from detectron2.utils import comm
from detectron2.utils.events import EventStorage

from inspose.data import COCO_PERSON, register_keypoint_dataset
from inspose.data.synthetic import GeneratorSettings, generate_dataset
from inspose.engine import Trainer
from inspose.engine.launch import find_free_port, launch_cpu
from inspose.engine.trainer import check_sync_batchnorm, wrap_data_parallel

from .conftest import REPO_ROOT
from .model_utils import batch_item, tiny_cfg

WORLD = 2
IMAGE_SIZE = (160, 192)
PERSONS = (2, 1)  # persons in the image of process 0 and of process 1
NO_BUDGET = ("MODEL.INSPOSE.MAX_KPNET_POSITIVES_PER_IMAGE", 0)
SOURCE_SET = "test_distributed_synthetic_val"  # the generated annotations
EVAL_SET = "test_distributed_pseudo_val"  # the checkpoint's own top detections as annotations
PSEUDO_PER_IMAGE = 1
PSEUDO_JITTER = 8.0  # pixels: the pseudo annotations are near, not at, the detections
EVAL_OPTS = (
    "MODEL.INSPOSE.SCORE_THRESH_TEST", 0.005, "MODEL.INSPOSE.PRE_NMS_TOPK_TEST", 50,
    "TEST.DETECTIONS_PER_IMAGE", 20, "INPUT.MIN_SIZE_TEST", 192, "INPUT.MAX_SIZE_TEST", 256,
)  # fmt: skip
RTOL = 1e-4
TIMINGS = {}


@pytest.fixture(scope="module", autouse=True)
def report_timings():
    """Prints how long the slow steps took, after the module's tests (shown with pytest -s)."""
    yield
    for name, seconds in TIMINGS.items():
        print(f"\n{name}: {seconds:.1f} s", end="")


# ---------------------------------------------------------------- shared by both sides
def _image(index):
    return batch_item(*IMAGE_SIZE, PERSONS[index], seed=index)


def _model_with_weights(cfg, job):
    model = build_model(cfg)
    model.load_state_dict(torch.load(Path(job) / "weights.pth"))
    return model


def _loss_cfg():
    return tiny_cfg(*NO_BUDGET)


def _eval_cfg(dataset, output_dir):
    return tiny_cfg(*EVAL_OPTS, "DATASETS.TEST", f"('{dataset}',)", "OUTPUT_DIR", str(output_dir))


def _losses_and_gradients(model, batch):
    """Losses (floats) and, after backward, {name: gradient} of ``model`` (DDP or not)."""
    with EventStorage():
        losses = model(batch)
    sum(losses.values()).backward()
    module = model.module if hasattr(model, "module") else model
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    return {k: v.item() for k, v in losses.items()}, grads


def _register(dataset, job):
    """Register ``dataset`` (SOURCE_SET or EVAL_SET) in this process, once."""
    if dataset in DatasetCatalog.list():
        return
    root = Path(job) / "synthetic"
    json_file = root / "annotations/person_keypoints_val.json"
    if dataset == EVAL_SET:
        json_file = Path(job) / "pseudo_val.json"
    register_keypoint_dataset(dataset, str(json_file), str(root / "val"), COCO_PERSON)


def _evaluate(job, dataset, output_dir):
    """Trainer.test of the saved weights; (metrics on the main process, predictions file)."""
    _register(dataset, job)
    cfg = _eval_cfg(dataset, output_dir)
    results = Trainer.test(cfg, _model_with_weights(cfg, job))
    predictions = Path(output_dir) / "inference" / dataset / "coco_instances_results.json"
    return results.get("keypoints"), predictions


def _pseudo_annotations(val_json, predictions_json, per_image):
    """The val file with each image's ``per_image`` best detections as its annotations.

    A random checkpoint scores AP 0 on real annotations; on (jittered copies of) its own
    detections its AP is high, and it falls when any process's detections are lost, which makes
    comparing APs meaningful.
    """
    coco = json.loads(Path(val_json).read_text())
    predictions = sorted(json.loads(Path(predictions_json).read_text()), key=lambda p: -p["score"])
    coco["annotations"] = []
    for image in coco["images"]:
        mine = [p for p in predictions if p["image_id"] == image["id"]][:per_image]
        for p in mine:
            coco["annotations"].append(_annotation(p, image, len(coco["annotations"]) + 1))
    return coco


def _annotation(prediction, image, annotation_id):
    xy = torch.tensor(prediction["keypoints"]).view(-1, 3)[:, :2]
    noise = torch.randn(xy.shape, generator=torch.Generator().manual_seed(annotation_id))
    xy += PSEUDO_JITTER * noise
    xy = torch.min(xy.clamp(min=0.0), torch.tensor([image["width"] - 1.0, image["height"] - 1.0]))
    low, high = xy.min(0).values, xy.max(0).values
    width, height = (high - low).clamp(min=1.0).tolist()
    keypoints = torch.cat([xy, torch.full((xy.shape[0], 1), 2.0)], dim=1)
    return {
        "id": annotation_id, "image_id": prediction["image_id"], "category_id": 1, "iscrowd": 0,
        "keypoints": keypoints.flatten().tolist(), "num_keypoints": xy.shape[0],
        "bbox": [low[0].item(), low[1].item(), width, height], "area": width * height,
    }  # fmt: skip


# ---------------------------------------------------------------- the gloo job (2 processes)
def _gloo_job(job):
    """Runs in every process of the gloo group; each step saves ``<step>_rank<r>.pt``."""
    rank = comm.get_rank()
    save = lambda step, value: torch.save(value, Path(job) / f"{step}_rank{rank}.pt")  # noqa: E731
    save("group", {"world": comm.get_world_size(), "local_rank": comm.get_local_rank(),
                   "threads": torch.get_num_threads()})  # fmt: skip
    model = wrap_data_parallel(_model_with_weights(_loss_cfg(), job))
    losses, grads = _losses_and_gradients(model, [_image(rank)])
    save("ddp", {"losses": losses, "grads": grads})
    save("sync_bn", _sync_batchnorm_facts())
    metrics, predictions = _evaluate(job, EVAL_SET, Path(job) / "eval_2")
    save("eval", {"metrics": metrics, "predictions": str(predictions)})
    _steps_with_a_personless_image(job, rank)
    save("personless", True)


def _sync_batchnorm_facts():
    """What happens to batch-norm layers in a 2-process CPU group."""
    facts = {}
    try:
        torch.nn.SyncBatchNorm(4).train()(torch.randn(2, 4, 3, 3))
        facts["torch_sync_bn_runs"] = True
    except ValueError as error:
        facts["torch_sync_bn_runs"], facts["torch_error"] = False, str(error)
    try:
        check_sync_batchnorm(_with_sync_batchnorm())
        facts["trainer_error"] = None
    except ValueError as error:
        facts["trainer_error"] = str(error)
    facts["naive_sync_bn_error"] = _naive_sync_bn_error()
    return facts


def _with_sync_batchnorm():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.SyncBatchNorm(4))


def _naive_sync_bn_error():
    """max |naiveSyncBN(x_rank) - BN(x_0, x_1)[rank's part]| (detectron2's all-reduce BN)."""
    rank = comm.get_rank()
    inputs = [torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(r)) for r in (0, 1)]
    synced = get_norm("naiveSyncBN", 4).train()(inputs[rank])
    whole = torch.nn.BatchNorm2d(4).train()(torch.cat(inputs))
    return (synced - whole[2 * rank : 2 * rank + 2]).abs().max().item()


def _steps_with_a_personless_image(job, rank):
    """Two DDP steps; process 1's image has no person (no KP-Net, no offset target)."""
    model = wrap_data_parallel(_model_with_weights(_loss_cfg(), job))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    for step in range(2):
        item = batch_item(*IMAGE_SIZE, 0 if rank == 1 else 1, seed=10 + step)
        with EventStorage():
            losses = model([item])
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A folder with weights.pth, a small synthetic dataset (train 4, val 4 images) and
    pseudo_val.json (the val images annotated with the checkpoint's own best detections)."""
    folder = tmp_path_factory.mktemp("distributed")
    torch.manual_seed(0)
    torch.save(build_model(_loss_cfg()).state_dict(), folder / "weights.pth")
    settings = GeneratorSettings(image_size=(192, 224))
    generate_dataset(str(folder / "synthetic"), 4, 4, seed=0, settings=settings, workers=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INSPOSE_CACHE", str(folder / "cache"))
        _, predictions = _evaluate(folder, SOURCE_SET, folder / "eval_source")
    val_json = folder / "synthetic/annotations/person_keypoints_val.json"
    pseudo = _pseudo_annotations(val_json, predictions, PSEUDO_PER_IMAGE)
    (folder / "pseudo_val.json").write_text(json.dumps(pseudo))
    return folder


@pytest.fixture(scope="module")
def gloo_run(job):
    """Runs ``_gloo_job`` in 2 gloo processes; returns the error text, "" when all went well."""
    start = time.perf_counter()
    error = ""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INSPOSE_CACHE", str(job / "cache"))
        try:
            launch_cpu(_gloo_job, WORLD, dist_url="auto", args=(str(job),))
        except Exception as exc:  # the tests whose step did not finish report it
            error = f"{type(exc).__name__}: {exc}"
    TIMINGS["gloo job (2 processes)"] = time.perf_counter() - start
    return error


def _result(job, gloo_run, step, rank=0):
    path = job / f"{step}_rank{rank}.pt"
    if not path.exists():
        pytest.fail(f"step {step!r} of the gloo job did not finish on rank {rank}: {gloo_run}")
    return torch.load(path)


@pytest.fixture(scope="module")
def single_process(job):
    """One process (this one, no process group) on both images: losses and gradients."""
    start = time.perf_counter()
    torch.manual_seed(0)
    losses, grads = _losses_and_gradients(
        _model_with_weights(_loss_cfg(), job), [_image(0), _image(1)]
    )
    TIMINGS["single process, losses"] = time.perf_counter() - start
    return losses, grads


def _relative_gradient_errors(reference, other):
    """{name: max |g_ref - g| / max |g_ref|} and the global max |diff| / max |g_ref|."""
    per_tensor = {}
    for name, g in reference.items():
        per_tensor[name] = ((g - other[name]).abs().max() / g.abs().max().clamp(min=1e-12)).item()
    scale = max(g.abs().max().item() for g in reference.values())
    diff = max((g - other[n]).abs().max().item() for n, g in reference.items())
    return per_tensor, diff / scale


# ---------------------------------------------------------------- tests: the launcher
@pytest.mark.slow
def test_launcher_forms_one_gloo_group_with_local_ranks(job, gloo_run):
    groups = [_result(job, gloo_run, "group", r) for r in range(WORLD)]
    assert [g["world"] for g in groups] == [WORLD, WORLD]
    assert [g["local_rank"] for g in groups] == [0, 1]
    cores = len(os.sched_getaffinity(0))
    if "OMP_NUM_THREADS" not in os.environ:
        assert all(g["threads"] == max(1, cores // WORLD) for g in groups)


def test_dist_url_auto_is_refused_for_several_machines():
    with pytest.raises(ValueError, match="one machine"):
        launch_cpu(print, 1, num_machines=2, dist_url="auto")


# ---------------------------------------------------------------- tests: losses and gradients
@pytest.mark.slow
def test_mean_of_process_losses_equals_single_process_losses(job, gloo_run, single_process):
    reference, _ = single_process
    per_rank = [_result(job, gloo_run, "ddp", r)["losses"] for r in range(WORLD)]
    assert set(per_rank[0]) == set(reference)
    errors = {}
    for name, value in reference.items():
        mean = sum(losses[name] for losses in per_rank) / WORLD
        errors[name] = abs(mean - value) / max(abs(value), 1e-12)
    print(f"\nlargest relative loss difference, 2 processes vs 1: {max(errors.values()):.2e}")
    for name in sorted(errors):
        print(f"  {name}: 1 process {reference[name]:.6f}, relative difference {errors[name]:.2e}")
    assert max(errors.values()) <= RTOL, errors
    # the images differ, so the test would notice a process computing the wrong image
    assert abs(per_rank[0]["loss_kpnet"] - per_rank[1]["loss_kpnet"]) > 1e-3


@pytest.mark.slow
def test_gradients_after_all_reduce_equal_single_process_gradients(job, gloo_run, single_process):
    _, reference = single_process
    grads = [_result(job, gloo_run, "ddp", r)["grads"] for r in range(WORLD)]
    assert set(grads[0]) == set(reference) == set(grads[1])
    for name, g in grads[0].items():  # DDP leaves the same averaged gradient everywhere
        assert torch.equal(g, grads[1][name]), name
    per_tensor, global_error = _relative_gradient_errors(reference, grads[0])
    worst = max(per_tensor, key=per_tensor.get)
    print(
        f"\ngradients, 2 processes vs 1: global max|diff| / max|g| = {global_error:.2e}; "
        f"worst tensor {worst}: {per_tensor[worst]:.2e} ({len(per_tensor)} tensors)"
    )
    assert global_error <= RTOL
    assert per_tensor[worst] <= RTOL, worst


@pytest.mark.slow
def test_ddp_steps_when_one_process_has_no_person(job, gloo_run):
    assert _result(job, gloo_run, "personless", 0) and _result(job, gloo_run, "personless", 1)


SMALL_HRNET = (
    "MODEL.BACKBONE.NAME", "build_inspose_hrnet_fpn_backbone", "MODEL.HRNET.WIDTH", 8,
    "MODEL.HRNET.NORM", "BN", "MODEL.HRNET.FREEZE_AT", 0, "MODEL.HRNET.STAGE1_NUM_BLOCKS", 1,
    "MODEL.HRNET.NUM_MODULES", "[1, 1, 1]", "MODEL.HRNET.NUM_BLOCKS", "[1, 1, 1]",
)  # fmt: skip


@pytest.mark.parametrize(
    "backbone, persons", [((), 0), (SMALL_HRNET, 1)], ids=["resnet-no-person", "hrnet"]
)
def test_every_trainable_parameter_gets_a_gradient(backbone, persons):
    """What DDP (without find_unused_parameters) needs of every process in every step.

    With no person there is no KP-Net to train; HRNet's last module also fuses into hr2, which
    the FPN does not use.
    """
    torch.manual_seed(0)
    model = build_model(tiny_cfg(*backbone))
    _losses_and_gradients(model, [batch_item(*IMAGE_SIZE, persons)])
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


# ---------------------------------------------------------------- tests: SyncBN on the CPU
@pytest.mark.slow
def test_sync_batchnorm_on_cpu_is_refused_with_a_clear_message(job, gloo_run):
    facts = _result(job, gloo_run, "sync_bn")
    assert not facts["torch_sync_bn_runs"], "torch runs SyncBatchNorm on the CPU now"
    assert facts["trainer_error"] and "naiveSyncBN" in facts["trainer_error"]
    assert facts["naive_sync_bn_error"] < 1e-5


def test_sync_batchnorm_check_passes_in_one_process():
    check_sync_batchnorm(_with_sync_batchnorm())  # no process group: SyncBN runs as BN


# ---------------------------------------------------------------- tests: evaluation
def _sorted_predictions(path):
    predictions = json.loads(Path(path).read_text())
    return sorted(predictions, key=lambda p: (p["image_id"], -p["score"], p["keypoints"]))


@pytest.mark.slow
def test_evaluation_gathers_every_process(job, gloo_run):
    two = _result(job, gloo_run, "eval")
    start, threads = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the 2 processes, so the numbers are bit-identical
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("INSPOSE_CACHE", str(job / "cache"))
            metrics_1, predictions_1 = _evaluate(job, EVAL_SET, job / "eval_1")
    finally:
        torch.set_num_threads(threads)
    TIMINGS["single process, evaluation"] = time.perf_counter() - start
    print(f"\nAP, 1 process: {metrics_1['AP']:.3f}, 2 processes: {two['metrics']['AP']:.3f}")
    print(f"  {len(_sorted_predictions(predictions_1))} detections on 4 images")
    print(f"  1 process: {metrics_1}\n  2 processes: {two['metrics']}")
    one_list, two_list = _sorted_predictions(predictions_1), _sorted_predictions(two["predictions"])
    images = {p["image_id"] for p in one_list}
    assert len(images) == 4 and {p["image_id"] for p in two_list} == images
    assert len(one_list) == len(two_list) > 0
    for a, b in zip(one_list, two_list):
        assert a["image_id"] == b["image_id"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)
        assert a["keypoints"] == pytest.approx(b["keypoints"], abs=1e-3)
    assert set(metrics_1) == set(two["metrics"]) and len(metrics_1) == 10
    assert metrics_1["AR"] > 50  # the pseudo annotations are found again (not a vacuous 0 == 0)
    for name, value in metrics_1.items():
        assert two["metrics"][name] == pytest.approx(value, abs=1e-6, nan_ok=True), name


# ---------------------------------------------------------------- tests: tools/train_net.py
TRAIN_OPTS = (
    "DATASETS.TRAIN", "('synthetic_keypoints_train',)",
    "DATASETS.TEST", "('synthetic_keypoints_val',)",
    "SOLVER.MAX_ITER", 3, "SOLVER.WARMUP_ITERS", 1, "SOLVER.STEPS", "(2,)",
    "SOLVER.IMS_PER_BATCH", 2, "INPUT.MIN_SIZE_TRAIN", "(160, 192)", "INPUT.MAX_SIZE_TRAIN", 224,
    "INPUT.MIN_SIZE_TEST", 160, "INPUT.MAX_SIZE_TEST", 224,
    "MODEL.INSPOSE.PRE_NMS_TOPK_TEST", 50, "TEST.DETECTIONS_PER_IMAGE", 20,
)  # fmt: skip


def _train_net(job, output_dir, *launcher_args, env=()):
    """A ``tools/train_net.py`` command on the tiny config, CUDA hidden, data in ``job``."""
    config = REPO_ROOT / "configs/quick_schedules/InsPose_R_18_tiny_cpu.yaml"
    command = [sys.executable, str(REPO_ROOT / "tools/train_net.py"), "--config-file", str(config),
               *launcher_args, *map(str, TRAIN_OPTS), "OUTPUT_DIR", str(output_dir)]  # fmt: skip
    env = dict(os.environ, DETECTRON2_DATASETS=str(job), INSPOSE_CACHE=str(job / "cache"),
               CUDA_VISIBLE_DEVICES="", **dict(env))  # fmt: skip
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(process, timeout=240):
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return process.returncode, output


def _assert_trained_and_evaluated_once(output_dir, world):
    assert (output_dir / "model_final.pth").is_file()
    logs = [output_dir / "log.txt"] + [output_dir / f"log.txt.rank{r}" for r in range(1, world)]
    assert all(log.is_file() for log in logs), sorted(p.name for p in output_dir.iterdir())
    saves = sum(log.read_text().count("Saving checkpoint to") for log in logs)
    assert saves == 1  # model_final.pth, by the main process only
    state = torch.load(output_dir / "model_final.pth", map_location="cpu", weights_only=False)
    assert state["iteration"] == 2  # MAX_ITER 3: iterations 0, 1, 2
    # the evaluation after training gathered both processes' detections into one AP table
    assert (output_dir / "log.txt").read_text().count("copypaste: AP,AP50,AP75") == 1


@pytest.mark.slow
def test_train_net_with_two_processes(job, tmp_path):
    start = time.perf_counter()
    code, output = _finish(_train_net(job, tmp_path, "--num-gpus", "2", "--dist-url", "auto"))
    TIMINGS["train_net --num-gpus 2"] = time.perf_counter() - start
    assert code == 0, output[-4000:]
    _assert_trained_and_evaluated_once(tmp_path, 2)


@pytest.mark.slow
def test_train_net_on_two_machines(job, tmp_path):
    """Two "machines" of one process each, on this one machine (so one thread each)."""
    url = f"tcp://127.0.0.1:{find_free_port()}"
    start = time.perf_counter()
    machines = [
        _train_net(job, tmp_path, "--num-gpus", "1", "--num-machines", "2",
                   "--machine-rank", str(rank), "--dist-url", url,
                   env={"OMP_NUM_THREADS": "1"})  # fmt: skip
        for rank in range(2)
    ]
    results = [_finish(m) for m in machines]
    TIMINGS["train_net, 2 machines x 1 process"] = time.perf_counter() - start
    for code, output in results:
        assert code == 0, output[-4000:]
    _assert_trained_and_evaluated_once(tmp_path, 2)


