"""The errors a new user meets in the first hour: one line naming the fix, exit code 2, before any
model is built (an unregistered dataset, no --config-file, an unknown key, a wrong value type,
--eval-only / the demo / a submission without trained weights)."""
import subprocess
import sys

import pytest
import torch

from inspose.engine.dataset_names import UnknownDatasetError, check_datasets_registered
from inspose.engine.setup import setup_cfg
from inspose.engine.user_errors import type_fix_hint
from inspose.engine.weights import UntrainedWeightsError, check_trained_weights, has_head_parameters

from .conftest import REPO_ROOT
from .model_utils import TINY_CONFIG, tiny_cfg, tiny_model
from .tool_utils import load_tool

TINY = str(REPO_ROOT / TINY_CONFIG)


def _exit_line(run, capsys):
    """(exit code, stderr lines) of ``run()``, which must raise SystemExit."""
    with pytest.raises(SystemExit) as exit_info:
        run()
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


def test_an_unregistered_dataset_names_close_matches_and_how_to_register():
    cfg = tiny_cfg("DATASETS.TEST", "('synthetic_keypoint_val',)")
    with pytest.raises(UnknownDatasetError) as error:
        check_datasets_registered(cfg)
    message = str(error.value)
    assert "DATASETS.TEST: dataset 'synthetic_keypoint_val' is not registered" in message
    assert "synthetic_keypoints_val" in message  # the close match
    assert "DATASETS.DESCRIPTIONS" in message and "register_keypoint_dataset" in message
    assert "\n" not in message


def test_setup_cfg_checks_the_datasets_before_any_model(monkeypatch):
    from inspose.engine import trainer

    monkeypatch.setattr(trainer.Trainer, "build_model", lambda cfg: pytest.fail("model built"))
    args = type("Args", (), {"config_file": TINY, "opts": ["DATASETS.TRAIN", "('my_data_train',)"]})()
    with pytest.raises(UnknownDatasetError, match="DATASETS.TRAIN: dataset 'my_data_train'"):
        setup_cfg(args, default_setup_fn=None)


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], "--config-file is required"),
        (["--config-file", TINY, "SOLVER.STEPS", "30"], 'write "(30,)"'),
        (["--config-file", TINY, "SOLVER.STEPZ", "(30,)"], "SOLVER.STEPZ does not exist. Did you mean SOLVER.STEPS"),
        (["--config-file", TINY, "DATASETS.TRAIN", "('nope',)"], "dataset 'nope' is not registered"),
        (["--config-file", TINY, "--eval-only"], "MODEL.WEIGHTS is empty"),
    ],
    ids=["no_config", "tuple_type", "unknown_key", "unknown_dataset", "eval_only_untrained"],
)
def test_train_net_reports_one_line_and_exits_2(argv, expected, capsys, monkeypatch):
    train_net = load_tool("train_net")
    monkeypatch.setattr("inspose.engine.launch.launch", lambda *a, **k: pytest.fail("launched"))
    code, lines = _exit_line(lambda: train_net.cli(argv), capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("train_net: error: ")
    assert expected in lines[0]


def test_type_hints_for_other_types():
    text = "Type mismatch (<class 'int'> vs. <class 'float'>) with values (3 vs. 2.5) for config key: A.B"
    assert "A.B takes a int, e.g. 3" in type_fix_hint(text)
    assert type_fix_hint("another error") == ""


def test_weights_without_inspose_heads_are_refused(tmp_path):
    model = tiny_model()
    trained, imagenet = tmp_path / "trained.pth", tmp_path / "imagenet.pth"
    torch.save({"model": model.state_dict()}, trained)
    torch.save({k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}, imagenet)
    check_trained_weights(str(trained))
    with pytest.raises(UntrainedWeightsError, match="none of InsPose's head parameters.*--allow-untrained"):
        check_trained_weights(str(imagenet))
    with pytest.raises(UntrainedWeightsError, match="MODEL.WEIGHTS is empty"):
        check_trained_weights("")
    with pytest.raises(UntrainedWeightsError, match="ImageNet weights"):
        check_trained_weights("detectron2://ImageNetPretrained/MSRA/R-50.pkl")
    assert has_head_parameters(["module.head.cls_logits.weight"]) and not has_head_parameters(["res2.conv1"])


def test_demo_refuses_untrained_weights_unless_asked(capsys, tmp_path):
    demo = load_tool("demo")
    (tmp_path / "a.png").write_bytes(b"")
    argv = ["--config-file", TINY, "--input", str(tmp_path / "a.png"), "--output", str(tmp_path / "out")]
    code, lines = _exit_line(lambda: demo.main(argv), capsys)
    assert code == 2 and len(lines) == 1 and "MODEL.WEIGHTS is empty" in lines[0] and "--allow-untrained" in lines[0]


def test_train_net_without_config_file_prints_no_traceback():
    done = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "train_net.py")], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
