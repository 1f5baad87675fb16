"""Dataset description files: the parser's errors, path rules, and registering the same name twice.

Every test registers its own dataset names (a fresh suffix) and unregisters them at the end, so
the catalog of the test session keeps no paths of a removed tmp_path.
"""
import logging
import os
import uuid

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

import inspose  # noqa: F401  (before detectron2's data)
from inspose.config import ConfigError, load_config
from inspose.data.description import DEFAULT_OKS_SIGMA, DescriptionError, load_description
from inspose.data.description_registry import (
    DatasetConflictError,
    register_description,
    registered_by,
    unregister,
)

from .conftest import REPO_ROOT
from .model_utils import TINY_CONFIG

TINY = str(REPO_ROOT / TINY_CONFIG)
NAMES = ["left_eye", "right_eye", "nose"]
SHIPPED = REPO_ROOT / "datasets" / "descriptions"


@pytest.fixture
def fresh():
    """A function: name -> a unique dataset name; each is unregistered after the test."""
    made = []

    def name(stem: str = "desc") -> str:
        made.append(f"{stem}_{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield name
    for made_name in made:
        unregister(made_name)


def _description(folder, name, *, file="data.yaml", json_file="ann.json", image_root="images", **fields):
    """Write a 3-keypoint description with one split; ``fields`` replace (None: remove) fields."""
    data = {
        "keypoint_names": f"[{', '.join(NAMES)}]",
        "flip_pairs": "[[left_eye, right_eye]]",
        "skeleton": "[[left_eye, nose], [right_eye, nose]]",
        "oks_sigmas": "[0.025, 0.025, 0.026]",
        "splits": f"\n  - {{name: {name}, json_file: {json_file}, image_root: {image_root}}}",
    }
    data.update(fields)
    text = "".join(f"{k}: {v}\n" for k, v in data.items() if v is not None)
    path = folder / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _error(path) -> str:
    with pytest.raises(DescriptionError) as error:
        load_description(str(path))
    return str(error.value)


# ---------------------------------------------------------------- the parser's errors


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"keypoint_names": None}, "keypoint_names", "missing"),
        ({"splits": None}, "splits", "missing"),
        ({"flip_pairs": None}, "flip_pairs", "missing"),
        ({"flip_pairs": "[[left_eye, rigth_eye]]"}, "flip_pairs[0]", "'rigth_eye' is not one of keypoint_names (did you mean right_eye?)"),
        ({"skeleton": "[[nose, chin]]"}, "skeleton[0]", "'chin' is not one of keypoint_names"),
        ({"oks_sigmas": "[0.025, 0.025]"}, "oks_sigmas", "2 values for 3 keypoint_names"),
        ({"oks_sigmas": "[0.025, -1, 0.02]"}, "oks_sigmas[1]", "positive number"),
        ({"flip_pair": "[]"}, "flip_pair", "unknown field (did you mean flip_pairs?)"),
        ({"evaluation": "mpii"}, "evaluation", "'mpii' is not one of coco, crowdpose"),
        ({"keypoint_names": "[a, b, a]"}, "keypoint_names", "a repeated"),
        ({"splits": "\n  - {name: x, json_file: a.json}"}, "splits[0].image_root", "missing"),
    ],
    ids=["no-names", "no-splits", "no-flips", "flip-typo", "skeleton-name", "sigma-count",
         "sigma-negative", "unknown-field", "protocol", "duplicate-name", "split-field"],
)  # fmt: skip
def test_errors_name_the_file_and_the_field(tmp_path, fields, field, words):
    path = _description(tmp_path, "x", **fields)
    message = _error(path)
    assert message.startswith(f"dataset description {path}: {field}: "), message
    assert words in message


def test_a_missing_description_file_is_named(tmp_path):
    assert f"{tmp_path / 'nope.yaml'} does not exist" in _error(tmp_path / "nope.yaml")


def test_a_missing_json_file_names_the_description_and_the_split(tmp_path, fresh):
    name = fresh()
    (tmp_path / "images").mkdir()
    path = _description(tmp_path, name, json_file="missing.json")
    register_description(load_description(str(path)))  # registering reads nothing but the YAML
    with pytest.raises(DescriptionError) as error:
        DatasetCatalog.get(name)
    expected = f"dataset description {path}: splits[0].json_file: {tmp_path / 'missing.json'} does not exist"
    assert str(error.value) == expected


def test_without_sigmas_every_keypoint_gets_the_default_with_a_warning(tmp_path, caplog):
    path = _description(tmp_path, "x", oks_sigmas=None)
    with caplog.at_level(logging.WARNING, logger="inspose.data.description"):
        spec = load_description(str(path)).spec
    assert spec.oks_sigmas == (DEFAULT_OKS_SIGMA,) * 3 == (0.07,) * 3
    assert f"{path}: no oks_sigmas, using 0.07" in caplog.text


def test_names_become_index_pairs(tmp_path):
    spec = load_description(str(_description(tmp_path, "x"))).spec
    assert spec.names == tuple(NAMES)
    assert spec.flip_pairs == ((0, 1),)
    assert spec.skeleton == ((0, 2), (1, 2))


# ---------------------------------------------------------------- paths


def test_paths_in_a_description_are_relative_to_it_or_to_its_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    split = load_description(str(_description(tmp_path / "d", "x"))).splits[0]
    assert (split.json_file, split.image_root) == (str(tmp_path / "d/ann.json"), str(tmp_path / "d/images"))
    split = load_description(str(_description(tmp_path / "d", "x", root="../data"))).splits[0]
    assert split.json_file == str(tmp_path / "data/ann.json")


def test_a_root_from_detectron2_datasets_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    path = _description(tmp_path / "d", "x", root="${DETECTRON2_DATASETS}/mine")
    assert load_description(str(path)).splits[0].json_file == str(tmp_path / "datasets/mine/ann.json")
    monkeypatch.setenv("DETECTRON2_DATASETS", "/data/sets")
    assert load_description(str(path)).splits[0].json_file == "/data/sets/mine/ann.json"
    message = _error(_description(tmp_path / "d", "x", root="${INSPOSE_NO_SUCH_VARIABLE}/x"))
    assert "root: environment variable INSPOSE_NO_SUCH_VARIABLE" in message


def test_a_description_in_a_base_config_is_relative_to_that_base(tmp_path, monkeypatch, fresh):
    name = fresh()
    _description(tmp_path / "base" / "data", name)
    (tmp_path / "base" / "base.yaml").write_text(
        f'_BASE_: "{TINY}"\nDATASETS:\n  DESCRIPTIONS: ["data/data.yaml"]\n'
    )
    (tmp_path / "leaf").mkdir()
    (tmp_path / "leaf" / "leaf.yaml").write_text('_BASE_: "../base/base.yaml"\nSOLVER:\n  MAX_ITER: 3\n')
    monkeypatch.chdir(tmp_path / "leaf")
    cfg = load_config("leaf.yaml")
    assert cfg.DATASETS.DESCRIPTIONS == [str(tmp_path / "base" / "data" / "data.yaml")]
    assert registered_by(name) == f"{tmp_path / 'base' / 'data' / 'data.yaml'} (splits[0])"
    assert MetadataCatalog.get(name).keypoint_names == tuple(NAMES)


def test_a_description_on_the_command_line_is_relative_to_the_working_directory(tmp_path, monkeypatch, fresh):
    name = fresh()
    _description(tmp_path / "here", name)
    (tmp_path / "cfg").mkdir()
    config = tmp_path / "cfg" / "c.yaml"
    config.write_text(f'_BASE_: "{TINY}"\nDATASETS:\n  DESCRIPTIONS: ["elsewhere.yaml"]\n')
    monkeypatch.chdir(tmp_path / "here")
    cfg = load_config(str(config), ["DATASETS.DESCRIPTIONS", "['data.yaml']"])
    assert cfg.DATASETS.DESCRIPTIONS == [str(tmp_path / "here" / "data.yaml")]
    assert name in DatasetCatalog.list()


def test_a_description_error_is_a_config_error(tmp_path):
    bad = _description(tmp_path, "x", oks_sigmas="[1]")
    with pytest.raises(ConfigError, match="oks_sigmas: 1 values for 3"):
        load_config(TINY, ["DATASETS.DESCRIPTIONS", f"['{bad}']"])


# ---------------------------------------------------------------- registering a name twice


def test_the_same_description_twice_is_a_no_op(tmp_path, fresh):
    name = fresh()
    path = _description(tmp_path, name)
    register_description(load_description(str(path)))
    loader = DatasetCatalog[name]
    copy = _description(tmp_path / "copy", name, json_file="../ann.json", image_root="../images")
    register_description(load_description(str(copy)))  # same files, other wording: no-op
    assert DatasetCatalog[name] is loader
    assert registered_by(name) == f"{path} (splits[0])"


@pytest.mark.parametrize(
    "change, words",
    [({"json_file": "other.json"}, "other files"), ({"oks_sigmas": "[0.1, 0.1, 0.1]"}, "other keypoint metadata")],
    ids=["files", "sigmas"],
)
def test_a_conflicting_description_names_both_sources(tmp_path, fresh, change, words):
    name = fresh()
    first = _description(tmp_path, name)
    register_description(load_description(str(first)))
    second = _description(tmp_path, name, file="second.yaml", **change)
    with pytest.raises(DatasetConflictError) as error:
        register_description(load_description(str(second)))
    message = str(error.value)
    assert f"{second} (splits[0])" in message and f"{first} (splits[0])" in message
    assert words in message


def test_a_name_registered_in_python_is_compared_through_its_metadata(tmp_path, fresh):
    from inspose.data import register_keypoint_dataset

    name = fresh()
    spec = load_description(str(_description(tmp_path, name))).spec
    register_keypoint_dataset(name, str(tmp_path / "ann.json"), str(tmp_path / "images"), spec)
    register_description(load_description(str(_description(tmp_path, name))))  # same: no-op
    assert registered_by(name) is None
    with pytest.raises(DatasetConflictError, match="an earlier registration"):
        register_description(load_description(str(_description(tmp_path, name, image_root="other"))))


def test_shipped_descriptions_parse_and_builtin_names_are_no_ops(monkeypatch, fresh):
    crowdpose = load_description(str(SHIPPED / "crowdpose.yaml"))
    assert crowdpose.spec.num_keypoints == 14 and crowdpose.evaluation == "crowdpose"
    assert [s.name for s in crowdpose.splits] == [f"crowdpose_{s}" for s in ("train", "val", "trainval", "test")]
    ochuman = load_description(str(SHIPPED / "ochuman.yaml"))
    assert [s.name for s in ochuman.splits] == ["ochuman_val", "ochuman_test"]
    for builtin in ("coco.yaml", "synthetic.yaml"):  # the same files as the built-in registrations
        description = load_description(str(SHIPPED / builtin))
        register_description(description)
        assert all(registered_by(s.name) is None for s in description.splits)


@pytest.fixture
def shipped_names():
    """Unregisters the shipped CrowdPose and OCHuman names before and after the test."""
    names = [s.name for f in ("crowdpose.yaml", "ochuman.yaml") for s in load_description(str(SHIPPED / f)).splits]
    for name in names:
        unregister(name)
    yield names
    for name in names:
        unregister(name)


def _link(target, link):
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def test_shipped_crowdpose_and_ochuman_load_their_layouts(tmp_path, monkeypatch, shipped_names, test_data_dir):
    """The samples laid out as datasets/README.md says, read through the shipped descriptions."""
    crowdpose, ochuman = test_data_dir / "crowdpose_mini", test_data_dir / "ochuman_mini"
    _link(crowdpose / "test_crowdpose.json", tmp_path / "crowdpose/json/crowdpose_test.json")
    _link(crowdpose, tmp_path / "crowdpose/images")
    _link(ochuman / "test_ochuman.json", tmp_path / "ochuman/ochuman_coco_format_val_range_0.00_1.00.json")
    _link(ochuman, tmp_path / "ochuman/images")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    for name in ("crowdpose.yaml", "ochuman.yaml"):
        register_description(load_description(str(SHIPPED / name)))
    assert len(DatasetCatalog.get("crowdpose_test")) == 2
    assert len(DatasetCatalog.get("ochuman_val")) == 3
    assert MetadataCatalog.get("crowdpose_test").keypoint_evaluation == "crowdpose"
    with pytest.raises(DescriptionError, match=r"ochuman.yaml: splits\[1\].json_file: .* does not exist"):
        DatasetCatalog.get("ochuman_test")


def test_shipped_configs_name_their_datasets(shipped_names):
    cfg = load_config(str(REPO_ROOT / "configs/crowdpose/InsPose_R_50_crowdpose.yaml"))
    assert cfg.DATASETS.TRAIN == ("crowdpose_trainval",) and cfg.DATASETS.TEST == ("crowdpose_test",)
    assert cfg.MODEL.INSPOSE.NUM_KEYPOINTS == len(MetadataCatalog.get("crowdpose_test").keypoint_names)
    cfg = load_config(str(REPO_ROOT / "configs/ochuman/InsPose_R_50_ochuman.yaml"))
    assert cfg.DATASETS.TEST == ("ochuman_val", "ochuman_test")
    assert os.path.isabs(cfg.DATASETS.DESCRIPTIONS[0])
