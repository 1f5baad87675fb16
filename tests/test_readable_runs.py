"""Readable runs: progress lines by time as well as by iteration (a fake clock), the model
printout in the log file only, known third-party notices silenced, quick ``--help`` of every tool
(no torch, no detectron2 imported; examples intact)."""
import io
import logging
import subprocess
import sys

import pytest
from detectron2.utils.events import EventWriter

from inspose.compat import KNOWN_NOISE_FILTER
from inspose.engine.file_log import log_to_files_only
from inspose.engine.timed_writer import TimedPeriodicWriter, should_write

from .conftest import REPO_ROOT
from .model_utils import tiny_cfg

TOOLS = sorted(p.stem for p in (REPO_ROOT / "tools").glob("*.py"))


class CountingWriter(EventWriter):
    def __init__(self):
        self.iterations = []
        self.trainer = None

    def write(self):
        self.iterations.append(self.trainer.iter)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _run_writer(step_seconds, max_iter=100, period=20, period_seconds=30.0):
    """Iterations at which a TimedPeriodicWriter writes, each step taking ``step_seconds``."""
    clock, writer = FakeClock(), CountingWriter()
    hook = TimedPeriodicWriter([writer], period=period, period_seconds=period_seconds, clock=clock)
    trainer = type("Trainer", (), {"iter": 0, "max_iter": max_iter})()
    hook.trainer = writer.trainer = trainer
    hook.before_train()
    for iteration in range(max_iter):
        trainer.iter = iteration
        clock.now += step_seconds
        hook.after_step()
    return writer.iterations


def test_slow_steps_write_by_time():
    written = _run_writer(step_seconds=8.0)  # a CPU step of 8 s: 20 iterations would take 160 s
    assert written[0] == 3  # 32 s after the start, well within the first minute
    assert all(b - a <= 4 for a, b in zip(written, written[1:])) and written[-1] == 99


def test_fast_steps_write_every_period():
    assert _run_writer(step_seconds=0.1) == list(range(19, 100, 20))
    assert _run_writer(step_seconds=8.0, period_seconds=0) == list(range(19, 100, 20))  # by iteration only
    assert should_write(4, 5, 20, 0.0, 30.0)  # the last step always writes


def test_the_trainer_uses_the_timed_writer_with_the_config_keys(tmp_path):
    from inspose.engine import Trainer

    cfg = tiny_cfg("LOG.PERIOD", 7, "LOG.PERIOD_SECONDS", 12.5, "OUTPUT_DIR", str(tmp_path))
    trainer = Trainer.__new__(Trainer)
    trainer.cfg = cfg
    hook = trainer._timed(__import__("detectron2.engine.hooks", fromlist=["PeriodicWriter"]).PeriodicWriter([], 20))
    assert isinstance(hook, TimedPeriodicWriter) and hook._period == 7 and hook._period_seconds == 12.5


def test_the_model_printout_goes_to_the_log_file_only(tmp_path, capsys):
    logger = logging.getLogger("readable_runs_test")
    logger.propagate, logger.level = False, logging.DEBUG
    log_file = io.StringIO()
    console, file_handler = logging.StreamHandler(sys.stdout), logging.StreamHandler(log_file)
    logger.handlers = [console, file_handler]
    child = logging.getLogger("readable_runs_test.defaults")
    try:
        log_to_files_only(child, "Model:\n%s", "InsPose(...)")
    finally:
        logger.handlers = []
    assert "Model:\nInsPose(...)" in log_file.getvalue()
    assert "Model" not in capsys.readouterr().out


def test_the_cuda_home_notice_is_dropped_and_other_lines_kept():
    notice = logging.makeLogRecord({"msg": "No CUDA runtime is found, using CUDA_HOME='%s'", "args": ("/usr",)})
    other = logging.makeLogRecord({"msg": "something else"})
    assert not KNOWN_NOISE_FILTER.filter(notice) and KNOWN_NOISE_FILTER.filter(other)
    assert KNOWN_NOISE_FILTER in logging.getLogger("torch.utils.cpp_extension").filters


def test_importing_inspose_prints_no_jit_deprecation():
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", "import inspose.engine"],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "torch.jit.script" not in done.stderr and "CUDA_HOME" not in done.stderr


@pytest.mark.parametrize("tool", TOOLS)
def test_help_imports_neither_torch_nor_detectron2(tool):
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(REPO_ROOT / "tools" / f"{tool}.py"), "--help"],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "detectron2", "inspose", "cv2"}, sorted(imported & {"torch", "detectron2"})
    assert f"python tools/{tool}.py" in done.stdout  # the examples, lines intact
    example = next(line for line in done.stdout.splitlines() if f"python tools/{tool}.py" in line)
    assert example.startswith("    python tools/")  # RawDescriptionHelpFormatter kept the indentation


def test_evaluation_writes_pictures_of_its_predictions(tmp_path):
    from inspose.data.synthetic import GeneratorSettings, generate_dataset
    from inspose.engine import Trainer

    from .model_utils import register_coco_person, tiny_model

    root = tmp_path / "data"
    generate_dataset(str(root), 1, 3, seed=3, settings=GeneratorSettings(image_size=(96, 128)), workers=1)
    name = register_coco_person(root / "annotations" / "person_keypoints_val.json", root / "val", "eval_pictures")
    opts = ("DATASETS.TEST", f"('{name}',)", "OUTPUT_DIR", str(tmp_path / "out"), "TEST.EXAMPLE_PICTURES", 2,
            "INPUT.MIN_SIZE_TEST", 64, "INPUT.MAX_SIZE_TEST", 96, "MODEL.INSPOSE.PRE_NMS_TOPK_TEST", 20)  # fmt: skip
    Trainer.test(tiny_cfg(*opts), tiny_model(*opts).eval())
    pictures = sorted((tmp_path / "out" / "inference" / name / "examples").iterdir())
    assert len(pictures) == 2 and all(p.suffix == ".jpg" for p in pictures)
    assert list((tmp_path / "out").glob("events.out.tfevents.*"))  # TensorBoard, outside training
