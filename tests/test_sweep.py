"""Tests of tools/sweep.py and tools/evaluate_run.py (``inspose.sweep``): grids, run names,
validation, tables, the runner with fake train / eval scripts, and one real tiny sweep on a tiny
synthetic dataset."""
import csv
import json
import math
import os
import re
import sys
import textwrap
import time

import pytest

import inspose  # noqa: F401  (compat shim before detectron2)
from inspose.data.synthetic import GeneratorSettings, generate_dataset
from inspose.evaluation.keypoint_evaluator import KEYPOINT_METRICS
from inspose.sweep import (
    FAILED,
    FINAL_METRICS_FILE,
    FINISHED,
    NOT_RUN,
    SKIPPED,
    GridError,
    MetricsFileError,
    SweepPlan,
    collect_rows,
    grid_combinations,
    name_runs,
    parse_grid,
    parse_grid_arg,
    read_final_metrics,
    run_all,
    run_sweep,
    training_only_opts,
    validate_sweep,
    write_final_metrics,
    write_tables,
)
from inspose.sweep.plan import sanitize_value, short_key_names
from inspose.sweep.run import device_ids

from .conftest import REPO_ROOT
from .model_utils import TINY_CONFIG, tiny_cfg
from .tool_utils import load_tool

TINY = str(REPO_ROOT / TINY_CONFIG)
SYNTHETIC_CONFIG = str(REPO_ROOT / "configs/synthetic/InsPose_R_18_synthetic_demo.yaml")


def sweep_main(argv):
    """``tools/sweep.py``'s main: its exit code."""
    return load_tool("sweep").main(argv)


def runs_of(*grid_args):
    return name_runs(grid_combinations(parse_grid(list(grid_args))))


# --------------------------------------------------------------------------- grid parsing


def test_comma_values_are_split_and_stripped():
    axis = parse_grid_arg(" MODEL.INSPOSE.KPNET_DEPTH = 1, 2,3 ,4")
    assert axis.key == "MODEL.INSPOSE.KPNET_DEPTH"
    assert axis.values == ("1", "2", "3", "4")


def test_literal_list_values_keep_their_commas():
    axis = parse_grid_arg("INPUT.MIN_SIZE_TRAIN=[(640,),(800,), (640, 800)]")
    assert axis.values == ("(640,)", "(800,)", "(640, 800)")


def test_literal_list_strings_are_passed_unquoted():
    assert parse_grid_arg('MODEL.INSPOSE.NORM=["GN", "", "BN"]').values == ("GN", "", "BN")


@pytest.mark.parametrize(
    "argument, message",
    [
        ("MODEL.INSPOSE.KPNET_DEPTH", "expected KEY=VALUE"),
        ("=1,2", "expected KEY=VALUE"),
        ("MODEL.INSPOSE.KPNET_DEPTH=", "no values"),
        ("MODEL.INSPOSE.KPNET_DEPTH=1,,2", "empty value"),
        ("INPUT.MIN_SIZE_TRAIN=(640,),(800,)", "list syntax"),
        ("INPUT.MIN_SIZE_TRAIN=[(640,),(800,)", "not a Python literal list"),
        ("INPUT.MIN_SIZE_TRAIN=[]", "empty"),
        ("MODEL.INSPOSE.KPNET_DEPTH=1,2,1", "1 given more than once"),
    ],
)
def test_malformed_grid_arguments_are_rejected(argument, message):
    with pytest.raises(GridError, match=re.escape(message)):
        parse_grid_arg(argument)


def test_a_key_in_two_grids_and_no_grid_are_rejected():
    with pytest.raises(GridError, match="KPNET_DEPTH given more than once"):
        parse_grid(["MODEL.INSPOSE.KPNET_DEPTH=1", "MODEL.INSPOSE.KPNET_DEPTH=2"])
    with pytest.raises(GridError, match="at least one --grid"):
        parse_grid([])


def test_combinations_are_the_cartesian_product_first_axis_slowest():
    combos = grid_combinations(parse_grid(["A.X=1,2,3", "B.Y=a,b"]))
    assert len(combos) == 6
    assert combos[0] == (("A.X", "1"), ("B.Y", "a"))
    assert combos[1] == (("A.X", "1"), ("B.Y", "b"))
    assert combos[-1] == (("A.X", "3"), ("B.Y", "b"))
    assert len(set(combos)) == 6


# --------------------------------------------------------------------------- run names


def test_run_names_use_the_last_key_component():
    names = [r.name for r in runs_of("MODEL.INSPOSE.KPNET_DEPTH=1,2", "MODEL.INSPOSE.OUTPUT_STRIDE=8")]
    assert names == ["KPNET_DEPTH=1_OUTPUT_STRIDE=8", "KPNET_DEPTH=2_OUTPUT_STRIDE=8"]


def test_values_are_sanitised_for_the_file_system():
    assert sanitize_value("(640,)") == "640"
    assert sanitize_value("(640, 800)") == "640-800"
    assert sanitize_value("peak_mass") == "peak_mass"
    assert sanitize_value("../../etc") == "etc"
    names = [r.name for r in runs_of("INPUT.MIN_SIZE_TRAIN=[(640,),(640, 800)]")]
    assert names == ["MIN_SIZE_TRAIN=640", "MIN_SIZE_TRAIN=640-800"]


def test_keys_with_the_same_last_component_get_longer_names():
    short = short_key_names(["MODEL.RESNETS.NORM", "MODEL.FPN.NORM", "MODEL.INSPOSE.KPNET_DEPTH"])
    assert short == {
        "MODEL.RESNETS.NORM": "RESNETS.NORM",
        "MODEL.FPN.NORM": "FPN.NORM",
        "MODEL.INSPOSE.KPNET_DEPTH": "KPNET_DEPTH",
    }
    (run,) = runs_of("MODEL.RESNETS.NORM=GN", "MODEL.FPN.NORM=GN")
    assert run.name == "RESNETS.NORM=GN_FPN.NORM=GN"


def test_different_runs_never_share_a_folder():
    grid = ('MODEL.INSPOSE.NORM=["GN", "gn", "(GN)", "G N", "G/N"]', "MODEL.INSPOSE.KPNET_DEPTH=[1, 2]")
    runs = runs_of(*grid)
    names = [r.name for r in runs]
    assert len(runs) == 10
    assert len({n.lower() for n in names}) == len(names)
    assert all(re.fullmatch(r"[A-Za-z0-9._+=-]+", n) for n in names)
    assert [r.name for r in runs_of(*grid)] == names  # the same folders again on a restart


def test_long_names_are_shortened_but_stay_unique():
    values = ",".join("x" * 150 + str(i) for i in range(3))
    runs = runs_of(f"MODEL.INSPOSE.KEYPOINT_SCORE={values}")
    assert all(len(r.name) <= 130 for r in runs)
    assert len({r.name for r in runs}) == 3


def test_run_opts_are_key_value_pairs_in_grid_order():
    (run,) = runs_of("INPUT.MIN_SIZE_TRAIN=[(640,)]", "MODEL.INSPOSE.KPNET_DEPTH=2")
    assert run.opts() == ["INPUT.MIN_SIZE_TRAIN", "(640,)", "MODEL.INSPOSE.KPNET_DEPTH", "2"]


# --------------------------------------------------------------------------- validation


def _validate(grid_args, extra=()):
    axes = parse_grid(list(grid_args))
    validate_sweep(TINY, axes, name_runs(grid_combinations(axes)), list(extra))


def test_a_valid_sweep_passes_validation():
    grid = ["MODEL.INSPOSE.KPNET_DEPTH=1,2", "INPUT.MIN_SIZE_TRAIN=[(256,),(320,)]"]
    _validate(grid, ["SOLVER.MAX_ITER", "3"])


def test_unknown_grid_key_is_named_with_close_matches():
    message = "MODEL.INSPOSE.KPNET_DEPT is not a config key; did you mean MODEL.INSPOSE.KPNET_DEPTH"
    with pytest.raises(GridError, match=re.escape(message)):
        _validate(["MODEL.INSPOSE.KPNET_DEPT=1,2"])


@pytest.mark.parametrize(
    "grid, extra, message",
    [
        (["MODEL.INSPOSE.KPNET_DEPTH=1,5"], [], "run KPNET_DEPTH=5"),
        (["MODEL.INSPOSE.KPNET_DEPTH=1,deep"], [], "run KPNET_DEPTH=deep"),
        (["MODEL.INSPOSE.KPNET_DEPTH=1"], ["SOLVER.MAX_ITR", "3"], "SOLVER.MAX_ITR is not a config key"),
        (["MODEL.INSPOSE.KPNET_DEPTH=1"], ["SOLVER.MAX_ITER"], "odd list"),
        (["MODEL.INSPOSE.KPNET_DEPTH=1"], ["MODEL.INSPOSE.KPNET_DEPTH", "2"], "a --grid key and an extra"),
        (["OUTPUT_DIR=a,b"], [], "OUTPUT_DIR is set by the sweep"),
        (["MODEL.INSPOSE.KPNET_DEPTH=1"], ["OUTPUT_DIR", "x"], "OUTPUT_DIR is set by the sweep"),
    ],
)
def test_invalid_sweeps_are_rejected_before_anything_runs(grid, extra, message):
    with pytest.raises(GridError, match=re.escape(message)):
        _validate(grid, extra)


def test_training_skips_its_own_final_evaluation_only_without_periodic_evaluation():
    assert training_only_opts(tiny_cfg(), ["MODEL.INSPOSE.KPNET_DEPTH"]) == ["DATASETS.TEST", "()"]
    assert training_only_opts(tiny_cfg("TEST.EVAL_PERIOD", 100), []) == []
    assert training_only_opts(tiny_cfg(), ["TEST.EVAL_PERIOD"]) == []


# --------------------------------------------------------------------------- metrics files and tables


def _metrics(ap):
    return {m: ap + i for i, m in enumerate(KEYPOINT_METRICS)}


def test_final_metrics_round_trip_with_nan_as_null(tmp_path):
    path = str(tmp_path / FINAL_METRICS_FILE)
    metrics = dict(_metrics(40.0), APl=math.nan)
    write_final_metrics(path, metrics, dataset="d")
    with open(path) as f:
        raw = json.load(f)
    assert raw["APl"] is None and raw["dataset"] == "d" and raw["AP"] == 40.0
    back = read_final_metrics(path)
    assert math.isnan(back["APl"]) and back["AR"] == metrics["AR"]
    assert read_final_metrics(str(tmp_path / "absent.json")) is None
    with pytest.raises(MetricsFileError, match="AP50"):
        write_final_metrics(path, {"AP": 1.0})
    (tmp_path / "broken.json").write_text('{"AP": 1')
    with pytest.raises(MetricsFileError, match="broken.json"):
        read_final_metrics(str(tmp_path / "broken.json"))


def test_result_tables_from_final_metrics_files(tmp_path):
    runs = runs_of("MODEL.INSPOSE.KPNET_DEPTH=1,2,3,4")
    for run, ap in ((runs[0], 10.0), (runs[1], 20.5)):
        os.makedirs(tmp_path / run.name)
        write_final_metrics(str(tmp_path / run.name / FINAL_METRICS_FILE), dict(_metrics(ap), APl=math.nan))
    rows = collect_rows(str(tmp_path), runs, failed=[runs[2].name])
    assert [r.status for r in rows] == [FINISHED, FINISHED, FAILED, NOT_RUN]
    md_path, csv_path = write_tables(str(tmp_path), rows)

    with open(csv_path) as f:
        table = list(csv.reader(f))
    assert table[0] == ["MODEL.INSPOSE.KPNET_DEPTH", "AP", "AP50", "AP75", "APm", "APl", "AR"]
    assert len(table) == 5
    assert table[1] == ["1", "10.0000", "11.0000", "12.0000", "13.0000", "nan", "15.0000"]
    assert table[2][:2] == ["2", "20.5000"]
    assert table[3] == ["3"] + ["failed"] * 6
    assert table[4] == ["4"] + ["not run"] * 6

    md = open(md_path).read().splitlines()
    assert md[0] == "| MODEL.INSPOSE.KPNET_DEPTH | AP | AP50 | AP75 | APm | APl | AR |"
    assert md[2] == "| 1 | 10.00 | 11.00 | 12.00 | 13.00 | nan | 15.00 |"
    assert md[4].startswith("| 3 | failed |")
    assert any(runs[2].name in line and "log.txt" in line for line in md[6:])


# --------------------------------------------------------------------------- runner, with fake steps

FAKE_TRAIN = """
import os, sys
argv = sys.argv[1:]
out = argv[argv.index("OUTPUT_DIR") + 1]
with open(os.path.join(os.path.dirname(out), "calls.txt"), "a") as f:
    f.write(f"train {os.path.basename(out)} {os.environ.get('CUDA_VISIBLE_DEVICES', '-')}\\n")
barrier = os.environ.get("FAKE_BARRIER")
if barrier:  # wait until every run has started: proves they run at the same time
    import time
    open(os.path.join(barrier, os.path.basename(out)), "w").close()
    deadline = time.time() + 30
    while len(os.listdir(barrier)) < int(os.environ["FAKE_BARRIER_COUNT"]) and time.time() < deadline:
        time.sleep(0.05)
if "bad" in argv:
    print("Traceback: the fake training broke", file=sys.stderr)
    sys.exit(3)
open(os.path.join(out, "model_final.pth"), "w").close()
"""

FAKE_EVAL = """
import json, os, sys
argv = sys.argv[1:]
out = argv[argv.index("OUTPUT_DIR") + 1]
with open(os.path.join(os.path.dirname(out), "calls.txt"), "a") as f:
    f.write(f"eval {os.path.basename(out)} {os.environ.get('CUDA_VISIBLE_DEVICES', '-')}\\n")
depth = float(argv[argv.index("MODEL.INSPOSE.KPNET_DEPTH") + 1])
names = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
json.dump({n: 10.0 * depth + i for i, n in enumerate(names)}, open(argv[argv.index("--output") + 1], "w"))
"""


@pytest.fixture
def fake_plan(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "train.py").write_text(textwrap.dedent(FAKE_TRAIN))
    (scripts / "eval.py").write_text(textwrap.dedent(FAKE_EVAL))
    root = tmp_path / "sweep"
    root.mkdir()
    return SweepPlan(
        TINY, str(root), ("SOLVER.MAX_ITER", "3"),
        train_command=[sys.executable, str(scripts / "train.py")],
        eval_command=[sys.executable, str(scripts / "eval.py")],
    )  # fmt: skip


def _calls(plan):
    path = os.path.join(plan.output_root, "calls.txt")
    return open(path).read().split("\n")[:-1] if os.path.exists(path) else []


def test_commands_carry_output_dir_grid_and_extra_overrides(fake_plan):
    (run,) = runs_of("MODEL.INSPOSE.KPNET_DEPTH=2")
    train = fake_plan.train_argv(run)
    folder = os.path.join(fake_plan.output_root, run.name)
    assert train[train.index("--config-file") + 1] == TINY and "--resume" in train
    assert train[-6:] == ["OUTPUT_DIR", folder, "MODEL.INSPOSE.KPNET_DEPTH", "2", "SOLVER.MAX_ITER", "3"]
    evaluate = fake_plan.eval_argv(run)
    assert evaluate[evaluate.index("--output") + 1] == os.path.join(folder, FINAL_METRICS_FILE)
    assert evaluate[-2:] == ["MODEL.WEIGHTS", os.path.join(folder, "model_final.pth")]


def test_finished_runs_are_skipped_and_the_rest_run(fake_plan, caplog):
    runs = runs_of("MODEL.INSPOSE.KPNET_DEPTH=1,2,3")
    done = os.path.join(fake_plan.output_root, runs[1].name)
    os.makedirs(done)
    write_final_metrics(os.path.join(done, FINAL_METRICS_FILE), _metrics(99.0))
    with caplog.at_level("INFO", logger="inspose.sweep"):
        outcomes = run_all(fake_plan, runs)
    assert [o.status for o in outcomes] == [FINISHED, SKIPPED, FINISHED]
    assert outcomes[1].metrics["AP"] == 99.0 and outcomes[2].metrics["AP"] == 30.0
    first, last = runs[0].name, runs[2].name
    assert _calls(fake_plan) == [f"train {first} -", f"eval {first} -", f"train {last} -", f"eval {last} -"]
    assert f"run {runs[1].name}: finished earlier" in caplog.text and "skipping" in caplog.text


def test_a_trained_run_without_metrics_is_only_evaluated(fake_plan):
    (run,) = runs_of("MODEL.INSPOSE.KPNET_DEPTH=4")
    os.makedirs(os.path.join(fake_plan.output_root, run.name))
    open(os.path.join(fake_plan.output_root, run.name, "model_final.pth"), "w").close()
    (outcome,) = run_all(fake_plan, [run])
    assert outcome.status == FINISHED and outcome.metrics["AP"] == 40.0
    assert _calls(fake_plan) == [f"eval {run.name} -"]


def test_a_failing_run_does_not_stop_the_sweep(fake_plan):
    runs = runs_of("MODEL.INSPOSE.KPNET_DEPTH=1", "MODEL.INSPOSE.NORM=GN,bad,BN")
    assert run_sweep(fake_plan, runs, num_gpus=1) == 1
    bad = runs[1].name
    trained = [line.split()[1] for line in _calls(fake_plan) if line.startswith("train")]
    assert trained == [r.name for r in runs]
    log = open(os.path.join(fake_plan.output_root, bad, "log.txt")).read()
    assert "training exited with code 3" in log and "the fake training broke" in log
    table = list(csv.reader(open(os.path.join(fake_plan.output_root, "results.csv"))))
    assert [row[1] for row in table[1:]] == ["GN", "bad", "BN"]
    assert table[1][2] == "10.0000" and table[2][2:] == ["failed"] * 6 and table[3][2] == "10.0000"
    # On restart only the failed run goes again.
    os.remove(os.path.join(fake_plan.output_root, "calls.txt"))
    assert run_sweep(fake_plan, runs, num_gpus=1) == 1
    assert _calls(fake_plan) == [f"train {bad} -"]


def test_device_ids_follow_cuda_visible_devices():
    assert device_ids(3, visible="") == ["0", "1", "2"]
    assert device_ids(2, visible="4, 6,7") == ["4", "6"]
    with pytest.raises(GridError, match="lists 1 device"):
        device_ids(2, visible="3")


def test_runs_go_concurrently_one_per_gpu(fake_plan, tmp_path, monkeypatch):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    monkeypatch.setenv("FAKE_BARRIER", str(barrier))
    monkeypatch.setenv("FAKE_BARRIER_COUNT", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    runs = runs_of("MODEL.INSPOSE.KPNET_DEPTH=1,2")
    start = time.perf_counter()
    outcomes = run_all(fake_plan, runs, num_gpus=2)
    assert [o.status for o in outcomes] == [FINISHED, FINISHED]
    assert time.perf_counter() - start < 25, "the runs waited for each other: they did not overlap"
    trains = sorted(line.split()[2] for line in _calls(fake_plan) if line.startswith("train"))
    assert trains == ["5", "7"]
    for run in runs:  # evaluation runs on the same device as its training
        devices = {line.split()[2] for line in _calls(fake_plan) if line.split()[1] == run.name}
        assert len(devices) == 1


# --------------------------------------------------------------------------- a real tiny sweep


@pytest.mark.slow
def test_real_tiny_sweep_end_to_end(tmp_path, monkeypatch, capsys):
    data = tmp_path / "datasets"
    settings = GeneratorSettings(image_size=(96, 128), max_persons=2)
    generate_dataset(str(data / "synthetic"), 8, 4, seed=0, settings=settings, workers=1)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(data))
    monkeypatch.setenv("INSPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    root = tmp_path / "sweep"
    argv = [
        "--config-file", SYNTHETIC_CONFIG, "--grid", "MODEL.INSPOSE.KPNET_DEPTH=1,2",
        "--output-root", str(root),
        "SOLVER.MAX_ITER", "2", "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "(1,)",
        "SOLVER.IMS_PER_BATCH", "2",
        "INPUT.MIN_SIZE_TRAIN", "(96, 128)", "INPUT.MAX_SIZE_TRAIN", "128",
        "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "128", "MODEL.INSPOSE.SCORE_THRESH_TEST", "0.0",
    ]  # fmt: skip
    assert sweep_main(argv) == 0, open(root / "sweep_log.txt").read()

    for depth in (1, 2):
        folder = root / f"KPNET_DEPTH={depth}"
        metrics = read_final_metrics(str(folder / FINAL_METRICS_FILE))
        assert set(metrics) == set(KEYPOINT_METRICS)
        assert 0.0 <= metrics["AP"] <= 100.0  # detections on annotated images: AP is a number
        assert f"KPNET_DEPTH: {depth}" in (folder / "config.yaml").read_text()
        assert (folder / "log.txt").is_file()
    table = list(csv.reader(open(root / "results.csv")))
    assert [row[0] for row in table[1:]] == ["1", "2"]
    assert all(cell != "failed" for row in table[1:] for cell in row)
    assert len((root / "results.md").read_text().strip().splitlines()) == 4  # header, rule, 2 runs

    capsys.readouterr()
    assert sweep_main(argv) == 0  # the same command again: nothing to do
    assert (root / "sweep_log.txt").read_text().count("finished earlier") == 2
