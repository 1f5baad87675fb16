"""datasets/prepare_coco.py on a COCO layout built from the coco_kp_mini sample."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "datasets" / "prepare_coco.py"


@pytest.fixture(scope="module")
def prepare_coco():
    """The script, imported as a module (``datasets/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("prepare_coco", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(source, target)
    except OSError:  # no symlinks here: copy instead
        target.write_bytes(source.read_bytes())


@pytest.fixture
def datasets_root(tmp_path, coco_kp_mini) -> Path:
    """DETECTRON2_DATASETS-style folder: coco_kp_mini as both train2017 and val2017."""
    json_file = coco_kp_mini / "annotations" / "person_keypoints_train2017.json"
    coco = tmp_path / "coco"
    for split in ("train2017", "val2017"):
        _link(json_file, coco / "annotations" / f"person_keypoints_{split}.json")
        for image in sorted((coco_kp_mini / "train2017").glob("*.jpg")):
            _link(image, coco / split / image.name)
    return tmp_path


def _run(prepare_coco, capsys, *args):
    """(exit code, stdout lines) of the script's main."""
    code = prepare_coco.main(list(args))
    return code, capsys.readouterr().out.splitlines()


def test_complete_train_split(prepare_coco, capsys, datasets_root):
    code, lines = _run(prepare_coco, capsys, "--root", str(datasets_root), "--splits", "train")
    assert code == 0
    assert lines[-1] == "COCO keypoints: ready"
    assert any("all 28 listed images present" in line for line in lines)


def test_missing_image_is_named(prepare_coco, capsys, datasets_root):
    (datasets_root / "coco" / "train2017" / "000000000790.jpg").unlink()
    code, lines = _run(prepare_coco, capsys, "--root", str(datasets_root), "--splits", "train,val")
    output = "\n".join(lines)
    assert code == 1
    assert lines[-1] == "COCO keypoints: 1 problem"
    assert "1 of 28 images" in output and "000000000790.jpg" in output
    assert "http://images.cocodataset.org/zips/train2017.zip" in output


def test_missing_val_json_is_named_with_its_archive(prepare_coco, capsys, datasets_root):
    (datasets_root / "coco" / "annotations" / "person_keypoints_val2017.json").unlink()
    code, lines = _run(prepare_coco, capsys, "--root", str(datasets_root), "--splits", "train,val")
    output = "\n".join(lines)
    assert code == 1
    val_json = datasets_root / "coco" / "annotations" / "person_keypoints_val2017.json"
    assert f"missing {val_json}" in output
    assert "http://images.cocodataset.org/annotations/annotations_trainval2017.zip" in output
    assert lines[-1] == "COCO keypoints: 1 problem"


def test_missing_test_dev_and_root_from_environment(
    prepare_coco, capsys, datasets_root, monkeypatch
):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(datasets_root))
    code, lines = _run(prepare_coco, capsys)  # all three splits
    output = "\n".join(lines)
    assert code == 1
    assert "image_info_test-dev2017.json" in output and "test2017" + os.sep in output
    assert "http://images.cocodataset.org/annotations/image_info_test2017.zip" in output
    assert "http://images.cocodataset.org/zips/test2017.zip" in output
    assert lines[-1] == "COCO keypoints: 2 problems"


def test_invalid_annotation_file_is_a_problem(prepare_coco, capsys, datasets_root):
    val_json = datasets_root / "coco" / "annotations" / "person_keypoints_val2017.json"
    val_json.unlink()
    val_json.write_text('{"images": [')
    code, lines = _run(prepare_coco, capsys, "--root", str(datasets_root), "--splits", "val")
    assert code == 1
    assert any("person_keypoints_val2017.json: not valid JSON" in line for line in lines)


def test_unknown_split_is_rejected(prepare_coco, capsys):
    with pytest.raises(SystemExit):
        prepare_coco.main(["--splits", "train,bogus"])
    assert "bogus" in capsys.readouterr().err


def test_runs_from_the_repository_root(datasets_root):
    command = [sys.executable, "datasets/prepare_coco.py", "--root", str(datasets_root),
               "--splits", "train"]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "COCO keypoints: ready"
