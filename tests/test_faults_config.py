"""Config faults: a typo'd key (in a file, a ``_BASE_`` file or an override) and invalid values.

Every error is a ``ConfigError`` naming where the bad key or value is and, for a typo, the keys the
user probably meant.
"""
import subprocess
import sys
import textwrap

import pytest

import inspose  # noqa: F401  (before detectron2)
from detectron2.modeling import build_model

from inspose.config import ConfigError, get_inspose_cfg, load_config

from .conftest import REPO_ROOT
from .model_utils import TINY_CONFIG, tiny_cfg
from .tool_utils import load_tool

TINY = str(REPO_ROOT / TINY_CONFIG)


def _write(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_unknown_key_in_yaml_names_file_key_and_close_match(tmp_path):
    config = _write(tmp_path / "typo.yaml", f"""\
        _BASE_: "{TINY}"
        MODEL:
          INSPOSE:
            KPNET_DEPHT: 2
        """)
    with pytest.raises(ConfigError) as error:
        load_config(config)
    message = str(error.value)
    assert message.startswith(f"{config}: config key MODEL.INSPOSE.KPNET_DEPHT does not exist.")
    assert "Did you mean MODEL.INSPOSE.KPNET_DEPTH" in message


def test_unknown_key_in_a_base_file_names_that_file(tmp_path):
    base = _write(tmp_path / "base.yaml", f"""\
        _BASE_: "{TINY}"
        MODEL:
          INSPOSE:
            HEATMAP:
              SIGMA: 2.0
        """)
    child = _write(tmp_path / "child.yaml", """\
        _BASE_: "base.yaml"
        SOLVER:
          MAX_ITER: 5
        """)
    with pytest.raises(ConfigError) as error:
        load_config(child)
    message = str(error.value)
    assert message.startswith(f"{base} (a _BASE_ of {child}): config key MODEL.INSPOSE.HEATMAP ")
    assert "MODEL.INSPOSE.HEATMAP_SIGMA" in message


def test_unknown_override_names_key_and_close_match():
    with pytest.raises(ConfigError) as error:
        load_config(TINY, ["MODEL.INSPOSE.OUTPUT_STRID", "4"])
    assert str(error.value).startswith(
        "command-line override: config key MODEL.INSPOSE.OUTPUT_STRID does not exist. "
        "Did you mean MODEL.INSPOSE.OUTPUT_STRIDE"
    )


def test_wrong_value_type_names_source_and_key(tmp_path):
    with pytest.raises(ConfigError, match=r"^command-line override: .*MODEL.INSPOSE.OUTPUT_STRIDE"):
        load_config(TINY, ["MODEL.INSPOSE.OUTPUT_STRIDE", "four"])


def test_missing_config_file(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match=f"config file {path} does not exist"):
        load_config(str(path))


def test_train_net_reports_the_typo(tmp_path, capsys):
    argv = ["--config-file", TINY, "MODEL.INSPOSE.KPNET_DEPHT", "2", "OUTPUT_DIR", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        load_tool("train_net").cli(argv)
    assert exit_info.value.code == 2
    assert "MODEL.INSPOSE.KPNET_DEPHT does not exist" in capsys.readouterr().err


INVALID_VALUES = {
    "kpnet_depth_0": ("MODEL.INSPOSE.KPNET_DEPTH", 0, "must be 1, 2, 3 or 4"),
    "output_stride_3": ("MODEL.INSPOSE.OUTPUT_STRIDE", 3, "must be one of (2, 4, 8, 16)"),
    "output_stride_32": ("MODEL.INSPOSE.OUTPUT_STRIDE", 32, "must be one of (2, 4, 8, 16)"),
    "negative_score_thresh": ("MODEL.INSPOSE.SCORE_THRESH_TEST", -0.1, "must lie in [0, 1]"),
    "negative_nms_thresh": ("MODEL.INSPOSE.NMS_THRESH_TEST", -0.5, "must lie in [0, 1]"),
    "negative_loss_weight": ("MODEL.INSPOSE.LOSS_WEIGHT_KPNET", -1.0, "must be >= 0"),
    "instance_score_typo": (
        "MODEL.INSPOSE.INSTANCE_SCORE", "cls_x_keypoint", "must be one of ('cls_x_keypoints', 'cls')"
    ),
    "keypoint_score_typo": (
        "MODEL.INSPOSE.KEYPOINT_SCORE", "peak", "must be one of ('peak_mass', 'peak_prob', 'instance')"
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_VALUES))
def test_invalid_value_is_caught_when_the_model_is_built(case):
    key, value, requirement = INVALID_VALUES[case]
    cfg = tiny_cfg(key, value)  # loading accepts it: the type is right
    with pytest.raises(ConfigError) as error:
        build_model(cfg)
    assert str(error.value) == f"{key} = {value!r} is invalid: {requirement}"


def test_the_config_package_imports_no_model_code():
    """``inspose.config`` alone (without the package's registrations) loads no ``inspose.modeling``
    module: the model imports the config, never the reverse."""
    script = (
        "import sys, types\n"
        f"package = types.ModuleType('inspose'); package.__path__ = [{str(REPO_ROOT / 'inspose')!r}]\n"
        "sys.modules['inspose'] = package\n"
        "import inspose.compat, inspose.config\n"
        "print(sorted(m for m in sys.modules if m.startswith('inspose.modeling')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_base_config_sets_detectron2_keys_that_add_inspose_config_leaves_alone():
    plain = get_inspose_cfg()
    assert plain.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"  # detectron2's default, untouched
    base = load_config(str(REPO_ROOT / "configs" / "Base-InsPose.yaml"))
    assert base.MODEL.META_ARCHITECTURE == "InsPose" and base.MODEL.KEYPOINT_ON
    assert base.MODEL.BACKBONE.NAME == "build_inspose_resnet_fpn_backbone"
    assert list(base.MODEL.FPN.IN_FEATURES) == list(base.MODEL.RESNETS.OUT_FEATURES) == ["res3", "res4", "res5"]
