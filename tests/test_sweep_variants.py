"""Tests of ``tools/sweep.py --variants`` (``inspose.sweep.variants``, ``plan``) and of the seed
summary of the result tables (``inspose.sweep.seeds``, ``results``): parsing, run names, crossing
with a SEED grid, the checks before anything runs, the tables from hand-written final_metrics.json
files against hand-computed means, and the runner with the fake steps of test_sweep.py."""
import csv
import json
import os
import re

import pytest

import inspose  # noqa: F401  (compat shim before detectron2)
from inspose.config import all_keys, load_config
from inspose.evaluation.keypoint_evaluator import KEYPOINT_METRICS
from inspose.sweep import (
    FAILED,
    FINAL_METRICS_FILE,
    FINISHED,
    NOT_RUN,
    GridError,
    Variant,
    collect_rows,
    grid_combinations,
    load_variants,
    name_runs,
    name_variant_runs,
    parse_grid,
    parse_variants,
    plan_sweep,
    run_sweep,
    write_tables,
)

from .conftest import REPO_ROOT
from .test_sweep import TINY, SYNTHETIC_CONFIG, _calls, fake_plan, sweep_main  # noqa: F401 (fixture)

COMPONENTS = str(REPO_ROOT / "configs/release/components_sweep.yaml")

VARIANTS = """\
# two variants of the tiny config
base: []
wide: [MODEL.INSPOSE.KPNET_CHANNELS, 16, MODEL.INSPOSE.CENTER_SAMPLE_RADIUS, 2.5]
no_heatmap:
  - MODEL.INSPOSE.HEATMAP_ON
  - False
"""


def _file(tmp_path, text, name="variants.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _runs(variants, *grid_args):
    axes = parse_grid(list(grid_args)) if grid_args else []
    return name_variant_runs(variants, grid_combinations(axes) if axes else [()])


# --------------------------------------------------------------------------- parsing


def test_variants_keep_file_order_and_become_command_line_text():
    text = VARIANTS + 'lists: [A.B, [1, 2], C.D, "(640, 800)", E.F, nose]\n'
    variants = parse_variants(text, "v.yaml")
    assert [v.name for v in variants] == ["base", "wide", "no_heatmap", "lists"]
    assert variants[0].overrides == ()
    assert variants[1].overrides == (
        ("MODEL.INSPOSE.KPNET_CHANNELS", "16"), ("MODEL.INSPOSE.CENTER_SAMPLE_RADIUS", "2.5"),
    )  # fmt: skip
    assert variants[2].overrides == (("MODEL.INSPOSE.HEATMAP_ON", "False"),)
    assert variants[3].overrides == (("A.B", "[1, 2]"), ("C.D", "(640, 800)"), ("E.F", "nose"))
    assert parse_variants("paper:\n", "v.yaml") == [Variant("paper", ())]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "v.yaml defines no variants"),
        ("# only a comment\n", "v.yaml defines no variants"),
        ("{}\n", "v.yaml defines no variants"),
        ("a: [X.Y, 1\nb: []\n", "v.yaml is not valid YAML"),
        ("- [X.Y, 1]\n", "v.yaml must be a mapping"),
        ("a: [X.Y, 1, X.Z]\n", "variant a: the overrides must be KEY VALUE pairs"),
        ("a: X.Y\n", "variant a: expected a list"),
        ("a: [1, 2]\n", "variant a: 1 is not a config key"),
        ("a: [X.Y, 1, X.Y, 2]\n", "variant a: key(s) X.Y set more than once"),
        ("a: []\nb: []\na: [X.Y, 1]\n", "'a' is defined more than once"),
        ("yes: []\n", "variant name True must be a non-empty string"),
    ],
)
def test_bad_variant_files_are_rejected_naming_the_file(text, message):
    with pytest.raises(GridError, match=re.escape(message)):
        parse_variants(text, "v.yaml")


def test_a_missing_or_malformed_file_is_named(tmp_path):
    absent = str(tmp_path / "absent.yaml")
    with pytest.raises(GridError, match=re.escape(f"--variants {absent} cannot be read")):
        load_variants(absent)
    path = _file(tmp_path, "a: [X.Y, 1\n")
    with pytest.raises(GridError, match=re.escape(f"{path} is not valid YAML")) as error:
        load_variants(path)
    assert "line" in str(error.value)  # yaml's position of the problem


# --------------------------------------------------------------------------- run names


def test_variants_cross_the_seed_grid_variant_slowest():
    variants = parse_variants(VARIANTS, "v.yaml")
    runs = _runs(variants, "SEED=1,2")
    assert [r.name for r in runs] == [
        "base_SEED=1", "base_SEED=2", "wide_SEED=1", "wide_SEED=2", "no_heatmap_SEED=1", "no_heatmap_SEED=2",
    ]  # fmt: skip
    assert [r.variant for r in runs] == ["base", "base", "wide", "wide", "no_heatmap", "no_heatmap"]
    assert runs[3].overrides == (("SEED", "2"),)
    # the variant's overrides first, then the grid's
    assert runs[3].opts() == [
        "MODEL.INSPOSE.KPNET_CHANNELS", "16", "MODEL.INSPOSE.CENTER_SAMPLE_RADIUS", "2.5", "SEED", "2",
    ]  # fmt: skip
    assert [r.name for r in _runs(variants)] == ["base", "wide", "no_heatmap"]
    assert [r.name for r in _runs(variants, "SEED=1,2", "MODEL.INSPOSE.KPNET_DEPTH=2")][:1] == [
        "base_SEED=1_KPNET_DEPTH=2"
    ]


def test_variant_names_are_sanitised_unique_and_stable():
    variants = [Variant("fast / cheap", ()), Variant("A", (("X.Y", "1"),)), Variant("a", (("X.Y", "2"),))]
    runs = _runs(variants, "SEED=1,2")
    names = [r.name for r in runs]
    assert names[:2] == ["fast-cheap_SEED=1", "fast-cheap_SEED=2"]
    assert len({n.lower() for n in names}) == 6  # "A" and "a" collide case-insensitively: hashed
    assert all(re.fullmatch(r"(A|a)_SEED=[12]-[0-9a-f]{8}", n) for n in names[2:])
    assert all(re.fullmatch(r"[A-Za-z0-9._+=-]+", n) for n in names)
    assert [r.name for r in _runs(variants, "SEED=1,2")] == names  # the same folders on a restart
    long = [Variant("v" * 200 + str(i), ()) for i in range(2)]
    long_names = [r.name for r in _runs(long, "SEED=1")]
    assert all(len(n) <= 130 for n in long_names) and len(set(long_names)) == 2
    with pytest.raises(GridError, match="no letter or digit"):
        _runs([Variant("//", ())])


def test_sweeps_without_variants_keep_their_folder_names():
    runs = name_runs(grid_combinations(parse_grid(["MODEL.INSPOSE.KPNET_DEPTH=1,2"])))
    assert [(r.name, r.variant, r.variant_overrides) for r in runs] == [
        ("KPNET_DEPTH=1", "", ()), ("KPNET_DEPTH=2", "", ()),
    ]  # fmt: skip


# --------------------------------------------------------------------------- checks before running


def _plan(tmp_path, text, grid=("SEED=1,2",), extra=()):
    variants_file = _file(tmp_path, text)
    return plan_sweep(TINY, list(grid), str(tmp_path / "out"), list(extra), variants_file=variants_file)


STAR_WITHOUT_NOSE = """\
no_nose: [MODEL.INSPOSE.KEYPOINT_REGRESSION_ON, True, MODEL.INSPOSE.STAR_DEFORM_ON, True,
  MODEL.INSPOSE.STAR_KEYPOINTS, [neck, left_shoulder, right_shoulder, left_wrist, right_wrist,
                                 left_hip, right_hip, left_ankle, right_ankle]]
"""


def test_a_valid_variant_sweep_is_planned(tmp_path):
    plan, runs = _plan(tmp_path, VARIANTS, extra=["SOLVER.MAX_ITER", "3"])
    assert len(runs) == 6
    train = plan.train_argv(runs[2])
    assert train[train.index("OUTPUT_DIR") + 1] == os.path.join(plan.output_root, "wide_SEED=1")
    start = train.index("OUTPUT_DIR") + 2  # then the variant's, the grid's, the extra overrides
    assert train[start : start + 8] == [
        "MODEL.INSPOSE.KPNET_CHANNELS", "16", "MODEL.INSPOSE.CENTER_SAMPLE_RADIUS", "2.5", "SEED", "1",
        "SOLVER.MAX_ITER", "3",
    ]  # fmt: skip
    _, no_grid = _plan(tmp_path, VARIANTS, grid=())
    assert [r.name for r in no_grid] == ["base", "wide", "no_heatmap"]


@pytest.mark.parametrize(
    "text, extra, message",
    [
        ("ok: []\nbad: [MODEL.INSPOSE.KPNET_DEPT, 2]\n", [],
         "variant bad: MODEL.INSPOSE.KPNET_DEPT is not a config key; did you mean MODEL.INSPOSE.KPNET_DEPTH"),
        ("seeded: [SEED, 3]\n", [], "variant seeded sets SEED, which is also a --grid key"),
        ("out: [OUTPUT_DIR, x]\n", [], "variant out sets OUTPUT_DIR, which the sweep sets"),
        ("it: [SOLVER.MAX_ITER, 5]\n", ["SOLVER.MAX_ITER", "3"],
         "variant it sets SOLVER.MAX_ITER, which is also an"),
        ("star: [MODEL.INSPOSE.STAR_DEFORM_ON, True]\n", [], "run star_SEED=1"),
        ("deep: [MODEL.INSPOSE.KPNET_DEPTH, 7]\n", [], "MODEL.INSPOSE.KPNET_DEPTH = 7 is invalid"),
        # valid as a config, fails when the model is built (the dataset has no "neck")
        (STAR_WITHOUT_NOSE, [], "run no_nose_SEED=1: the model cannot be built"),
    ],
)  # fmt: skip
def test_bad_variants_are_rejected_before_anything_runs(tmp_path, text, extra, message):
    with pytest.raises(GridError, match=re.escape(message)) as error:
        _plan(tmp_path, text, extra=extra)
    if text.startswith("star:"):  # an invalid combination: validation names both keys
        assert "STAR_DEFORM_ON" in str(error.value) and "KEYPOINT_REGRESSION_ON" in str(error.value)
    assert not os.path.exists(tmp_path / "out")


def test_the_tool_dry_run_reads_a_relative_variants_file(tmp_path, monkeypatch, capsys):
    _file(tmp_path, VARIANTS)
    monkeypatch.chdir(tmp_path)
    common = ["--config-file", TINY, "--output-root", "out", "--dry-run"]
    assert sweep_main(common + ["--variants", "variants.yaml", "--grid", "SEED=1,2"]) == 0
    out = capsys.readouterr().out
    names = [line for line in out.splitlines() if not line.startswith(" ")]
    assert names == [
        "base_SEED=1", "base_SEED=2", "wide_SEED=1", "wide_SEED=2", "no_heatmap_SEED=1", "no_heatmap_SEED=2",
    ]  # fmt: skip
    assert "MODEL.INSPOSE.HEATMAP_ON False SEED 2" in out
    assert sweep_main(common + ["--variants", "variants.yaml"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "base"
    (tmp_path / "broken.yaml").write_text("a: [X.Y\n")
    assert sweep_main(common + ["--variants", "broken.yaml"]) == 2
    assert "broken.yaml is not valid YAML" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        sweep_main(common)
    assert exit_info.value.code == 2 and "--variants FILE" in capsys.readouterr().err


# --------------------------------------------------------------------------- seed tables


def _write_metrics(root, name, values):
    """final_metrics.json of run ``name``: ``values`` for AP, AP50, AP75, APm, APl (AR and the
    rest 0), written by hand (json.dump), not through write_final_metrics."""
    os.makedirs(os.path.join(root, name))
    record = {m: 0.0 for m in KEYPOINT_METRICS}
    record.update(zip(["AP", "AP50", "AP75", "APm", "APl"], values))
    with open(os.path.join(root, name, FINAL_METRICS_FILE), "w") as f:
        json.dump(record, f)


def test_seed_tables_give_the_mean_and_each_seed(tmp_path):
    root = str(tmp_path)
    variants = [Variant("paper", ()), Variant("star", (("X.Y", "1"),))]
    runs = _runs(variants, "SEED=1,2")
    _write_metrics(root, "paper_SEED=1", [62.83, 85.0, 70.0, 58.0, 71.0])
    _write_metrics(root, "paper_SEED=2", [63.41, 86.0, 69.0, 57.0, 72.25])
    _write_metrics(root, "star_SEED=1", [40.04, 60.0, 41.0, 30.0, 55.0])
    rows = collect_rows(root, runs, failed=["star_SEED=2"])
    assert [r.status for r in rows] == [FINISHED, FINISHED, FINISHED, FAILED]
    md_path, csv_path, seeds_path = write_tables(root, rows)

    table = list(csv.reader(open(csv_path)))
    assert table[0] == ["variant", "SEED", "AP", "AP50", "AP75", "APm", "APl", "AR"]
    assert table[1][:3] == ["paper", "1", "62.8300"] and table[4][:3] == ["star", "2", "failed"]

    md = open(md_path).read()
    assert md.splitlines()[0] == "| variant | SEED | AP | AP50 | AP75 | APm | APl | AR |"
    assert "Mean over SEED = 1, 2 (then the value of each seed):" in md
    seed_lines = [line for line in md.splitlines() if line.startswith(("| paper |", "| star |"))][-2:]
    # by hand: AP (62.83 + 63.41) / 2 = 63.12; APl (71 + 72.25) / 2 = 71.625 -> 71.6
    assert seed_lines[0] == (
        "| paper | 2 of 2 | 63.1 (62.8, 63.4) | 85.5 (85.0, 86.0) | 69.5 (70.0, 69.0) | 57.5 (58.0, 57.0) "
        "| 71.6 (71.0, 72.2) | 0.0 (0.0, 0.0) |"
    )
    assert seed_lines[1].startswith("| star | 1 of 2 | 40.0 (40.0, failed) | 60.0 (60.0, failed) |")

    seeds = list(csv.reader(open(seeds_path)))
    assert seeds[0][:6] == ["variant", "seeds finished", "AP", "AP (SEED=1)", "AP (SEED=2)", "AP50"]
    paper, star = seeds[1], seeds[2]
    assert paper[:5] == ["paper", "2 of 2", "63.1200", "62.8300", "63.4100"]
    assert float(paper[2]) == pytest.approx((62.83 + 63.41) / 2, abs=1e-4)
    assert float(paper[seeds[0].index("APl")]) == pytest.approx(71.625, abs=1e-4)
    assert star[:5] == ["star", "1 of 2", "40.0400", "40.0400", "failed"]


def test_seed_groups_follow_the_other_grid_keys_without_variants(tmp_path):
    root = str(tmp_path)
    runs = name_runs(grid_combinations(parse_grid(["MODEL.INSPOSE.KPNET_DEPTH=1,2", "SEED=5,6"])))
    for run, ap in zip(runs, (10.0, 12.0, 20.0, 21.0)):
        _write_metrics(root, run.name, [ap] * 5)
    md_path, _, seeds_path = write_tables(root, collect_rows(root, runs))
    md = open(md_path).read()
    assert "| MODEL.INSPOSE.KPNET_DEPTH | seeds finished | AP |" in md
    assert "| 1 | 2 of 2 | 11.0 (10.0, 12.0) |" in md and "| 2 | 2 of 2 | 20.5 (20.0, 21.0) |" in md
    assert "variant" not in md
    assert list(csv.reader(open(seeds_path)))[2][:5] == ["2", "2 of 2", "20.5000", "20.0000", "21.0000"]


def test_tables_without_variants_or_seeds_are_unchanged(tmp_path):
    root = str(tmp_path)
    runs = name_runs(grid_combinations(parse_grid(["MODEL.INSPOSE.KPNET_DEPTH=1,2"])))
    _write_metrics(root, runs[0].name, [10.0] * 5)
    paths = write_tables(root, collect_rows(root, runs))
    assert [os.path.basename(p) for p in paths] == ["results.md", "results.csv"]
    assert open(paths[0]).read() == (
        "| MODEL.INSPOSE.KPNET_DEPTH | AP | AP50 | AP75 | APm | APl | AR |\n|---|---|---|---|---|---|---|\n"
        "| 1 | 10.00 | 10.00 | 10.00 | 10.00 | 10.00 | 0.00 |\n"
        "| 2 | not run | not run | not run | not run | not run | not run |\n"
    )
    variant_runs = _runs([Variant("paper", ())])
    _write_metrics(root, "paper", [30.0] * 5)
    md_path, csv_path = write_tables(root, collect_rows(root, variant_runs))
    assert list(csv.reader(open(csv_path))) == [
        ["variant", "AP", "AP50", "AP75", "APm", "APl", "AR"],
        ["paper", "30.0000", "30.0000", "30.0000", "30.0000", "30.0000", "0.0000"],
    ]
    assert NOT_RUN not in open(md_path).read()


# --------------------------------------------------------------------------- the runner


def test_a_variant_sweep_runs_and_resumes_in_the_same_folders(fake_plan, tmp_path):
    # The fake evaluation's AP is 10 x KPNET_DEPTH, which the variants set.
    variants = parse_variants("d1: [MODEL.INSPOSE.KPNET_DEPTH, 1]\nd3: [MODEL.INSPOSE.KPNET_DEPTH, 3]\n", "v")
    runs = _runs(variants, "SEED=1,2")
    assert run_sweep(fake_plan, runs, num_gpus=1) == 0
    root = fake_plan.output_root
    tables = ["calls.txt", "results.csv", "results.md", "results_seeds.csv"]
    assert sorted(os.listdir(root)) == sorted(tables + ["d1_SEED=1", "d1_SEED=2", "d3_SEED=1", "d3_SEED=2"])
    settings = json.load(open(os.path.join(root, "d3_SEED=2", "sweep_run.json")))
    assert settings["variant"] == "d3"
    assert settings["overrides"] == ["MODEL.INSPOSE.KPNET_DEPTH", "3", "SEED", "2"]
    md = open(os.path.join(root, "results.md")).read()
    assert "| d1 | 2 of 2 | 10.0 (10.0, 10.0) |" in md and "| d3 | 2 of 2 | 30.0 (30.0, 30.0) |" in md
    os.remove(os.path.join(root, "calls.txt"))
    assert run_sweep(fake_plan, _runs(variants, "SEED=1,2"), num_gpus=1) == 0
    assert _calls(fake_plan) == []  # every run found finished in its folder


# --------------------------------------------------------------------------- issue 12's variants file


ISSUE_12_VARIANTS = [
    "paper", "regression", "star", "varifocal", "kpnet_normalizer", "stride4_branch", "feature_ending",
    "soft_nms", "kpnets_after_nms", "all_release", "plus",
]  # fmt: skip


def test_the_release_components_file_parses_and_validates_on_the_demo_config(tmp_path):
    variants = load_variants(COMPONENTS)
    assert [v.name for v in variants] == ISSUE_12_VARIANTS
    by_name = {v.name: dict(v.overrides) for v in variants}
    assert by_name["paper"] == {}
    assert by_name["soft_nms"] == {
        "MODEL.INSPOSE.NMS_TYPE": "soft_linear", "MODEL.INSPOSE.NMS_THRESH_TEST": "0.3",
    }  # fmt: skip
    singles = set().union(*(by_name[n] for n in ISSUE_12_VARIANTS[1:9]))
    assert singles <= set(by_name["all_release"]) and singles <= set(by_name["plus"])
    known = set(all_keys(load_config(SYNTHETIC_CONFIG)))
    missing = sorted({key for v in variants for key in v.keys()} - known)
    if missing:  # keys other work adds (the stride-4 branch); validated once they exist
        pytest.skip(f"config keys not defined yet: {', '.join(missing)}")
    _, runs = plan_sweep(SYNTHETIC_CONFIG, ["SEED=1,2"], str(tmp_path), [], variants_file=COMPONENTS)
    assert [r.name for r in runs[:3]] == ["paper_SEED=1", "paper_SEED=2", "regression_SEED=1"]
    assert len(runs) == 2 * len(ISSUE_12_VARIANTS)
