"""Planning a sweep: ``--grid`` arguments, their combinations, run folders, checks, commands.

Grid values, two syntaxes:

* comma-separated: ``MODEL.INSPOSE.KPNET_DEPTH=1,2,3,4`` -> ``"1"``, ``"2"``, ``"3"``, ``"4"``;
* a Python literal list, for values that contain commas or brackets:
  ``INPUT.MIN_SIZE_TRAIN=[(640,),(800,)]`` -> ``"(640,)"``, ``"(800,)"``.

Values stay strings, exactly as detectron2's ``merge_from_list`` reads them from a command line.
The runs are the cartesian product of the grids (first grid slowest).

Named variants (``--variants FILE``, ``variants.py``): each variant is a set of overrides; the runs
are then every variant (slowest, in file order) crossed with every grid combination, and ``--grid``
is optional. A run applies its variant's overrides, then its grid values.

Run folder names (``KPNET_DEPTH=1_OUTPUT_STRIDE=8``): a key is shortened to its last component, or
to as many trailing components as make it unique among the grid's keys (``RESNETS.NORM`` beside
``FPN.NORM``). A value keeps letters, digits and ``. _ + -``; other characters become ``-``
(``(640,)`` -> ``640``). Names that would collide (also case-insensitively, for macOS and Windows
file systems) or run too long get a short hash of the exact overrides, so two different runs never
share a folder and a restarted sweep finds the same folders again. With variants a name starts
with the variant's name, sanitised as a value (``stride4_branch_SEED=1``; the variant's name alone
without a grid), and its hash also covers the variant's name and overrides.

Before any run starts (``validate_sweep``): every grid key must exist (the error names it and its
close matches), the extra ``KEY VALUE`` pairs must be pairs that do not set a grid key or
``OUTPUT_DIR`` (the sweep sets it), every variant's keys must exist and none may set a grid key, an
extra override's key or ``OUTPUT_DIR`` (the error names the variant), every combination must give
a config InsPose accepts, and its model must build (on the CPU, without weights; once per
architecture: runs that differ only in ``SEED`` build one model).

``SweepPlan`` holds what the runs share and gives each run's two commands: ``tools/train_net.py
--resume`` and ``tools/evaluate_run.py``.
"""
import ast
import difflib
import hashlib
import itertools
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from detectron2.modeling import build_model

from ..config import ConfigError, all_keys, load_config, validate_inspose_config
from .errors import GridError
from .results import FINAL_METRICS_FILE
from .seeds import SEED_KEY
from .variants import Variant, load_variants

__all__ = [
    "GridAxis",
    "GridError",
    "SweepPlan",
    "SweepRun",
    "grid_combinations",
    "name_runs",
    "name_variant_runs",
    "parse_grid",
    "parse_grid_arg",
    "plan_sweep",
    "sanitize_value",
    "short_key_names",
    "training_only_opts",
    "validate_sweep",
]

TOOLS = Path(__file__).resolve().parents[2] / "tools"
TRAIN_NET = TOOLS / "train_net.py"
EVALUATE_RUN = TOOLS / "evaluate_run.py"

# --------------------------------------------------------------------------- grids

BRACKETS = "([{)]}"


@dataclass(frozen=True)
class GridAxis:
    """One varied config key and the values it takes, in the order given."""

    key: str
    values: Tuple[str, ...]


def _literal_values(text: str, argument: str) -> List[str]:
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError) as error:
        raise GridError(f"--grid {argument}: {text} is not a Python literal list ({error})") from None
    if not isinstance(parsed, list):
        raise GridError(f"--grid {argument}: {text} must be a list, e.g. [(640,),(800,)]")
    return [v if isinstance(v, str) else repr(v) for v in parsed]


def _comma_values(text: str, argument: str) -> List[str]:
    if any(c in text for c in BRACKETS):
        raise GridError(
            f"--grid {argument}: values with brackets need the list syntax, "
            f"e.g. KEY=[(640,),(800,)] instead of KEY=(640,),(800,)"
        )
    values = [v.strip() for v in text.split(",")]
    if any(v == "" for v in values):
        raise GridError(f"--grid {argument}: empty value in {text!r}")
    return values


def parse_grid_arg(argument: str) -> GridAxis:
    """``"KEY=v1,v2"`` or ``"KEY=[v1, v2]"`` -> ``GridAxis(KEY, ("v1", "v2"))``.

    Raises:
        GridError: no ``=``, an empty key or value list, a malformed list, or a repeated value.
    """
    key, sep, text = argument.partition("=")
    key, text = key.strip(), text.strip()
    if not sep or not key:
        raise GridError(
            f"--grid {argument!r}: expected KEY=VALUE,VALUE,... e.g. MODEL.INSPOSE.KPNET_DEPTH=1,2"
        )
    if not text:
        raise GridError(f"--grid {argument}: no values after '='")
    values = _literal_values(text, argument) if text.startswith("[") else _comma_values(text, argument)
    if not values:
        raise GridError(f"--grid {argument}: the value list is empty")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise GridError(f"--grid {argument}: value(s) {', '.join(repeated)} given more than once")
    return GridAxis(key, tuple(values))


def parse_grid(arguments: Sequence[str]) -> List[GridAxis]:
    """Every ``--grid`` argument, checked for a key given twice."""
    if not arguments:
        raise GridError("at least one --grid KEY=VALUES (or --variants FILE) is needed")
    axes = [parse_grid_arg(a) for a in arguments]
    keys = [axis.key for axis in axes]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise GridError(
            f"--grid: key(s) {', '.join(repeated)} given more than once; list all values in one --grid"
        )
    return axes


def grid_combinations(axes: Sequence[GridAxis]) -> List[Tuple[Tuple[str, str], ...]]:
    """The cartesian product, first axis slowest: [((KEY, VALUE), ...) per run]."""
    return [
        tuple(zip((axis.key for axis in axes), values))
        for values in itertools.product(*(axis.values for axis in axes))
    ]


# --------------------------------------------------------------------------- run names

MAX_NAME_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")

Overrides = Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class SweepRun:
    """One run: its folder name, its grid ``(KEY, VALUE)`` overrides in grid order and, in a sweep
    with ``--variants``, its variant's name and overrides (``""`` and ``()`` otherwise)."""

    name: str
    overrides: Overrides
    variant: str = ""
    variant_overrides: Overrides = ()

    def opts(self) -> List[str]:
        """``[KEY, VALUE, KEY, VALUE, ...]`` for a detectron2 command line: variant, then grid."""
        return [item for pair in (*self.variant_overrides, *self.overrides) for item in pair]


def short_key_names(keys: Sequence[str]) -> Dict[str, str]:
    """{full key: the shortest trailing part of it that no other key ends with}."""
    short = {}
    for key in keys:
        parts = key.split(".")
        for count in range(1, len(parts) + 1):
            suffix = ".".join(parts[-count:])
            clashes = [k for k in keys if k != key and (k == suffix or k.endswith("." + suffix))]
            if not clashes:
                break
        short[key] = suffix
    return short


def sanitize_value(value: str) -> str:
    """A value as file-name text: ``"(640, 800)"`` -> ``"640-800"``, ``"peak_mass"`` unchanged."""
    return _UNSAFE.sub("-", value).strip("-.")


def _digest(overrides: Overrides, variant: Optional[Variant] = None) -> str:
    text = "\n".join(f"{k}={v}" for k, v in overrides)
    if variant is not None:  # runs without a variant keep their hashes (and folders)
        pairs = "\n".join(f"{k}={v}" for k, v in variant.overrides)
        text = f"variant={variant.name}\n{pairs}\n--\n{text}"
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _grid_name(overrides: Overrides, short: Dict[str, str]) -> str:
    return "_".join(f"{short[k]}={sanitize_value(v)}" for k, v in overrides)


def _fit_length(name: str, digest: str) -> str:
    if len(name) > MAX_NAME_LENGTH:
        name = name[: MAX_NAME_LENGTH - 9].rstrip("-._") + "-" + digest
    return name


def _unique_runs(runs: List[SweepRun], digests: List[str]) -> List[SweepRun]:
    """``runs`` with ``-<digest>`` after every name that collides (also case-insensitively)."""
    counts = Counter(run.name.lower() for run in runs)
    return [
        SweepRun(f"{run.name}-{digest}", run.overrides, run.variant, run.variant_overrides)
        if counts[run.name.lower()] > 1 else run
        for run, digest in zip(runs, digests)
    ]  # fmt: skip


def name_runs(combinations: Sequence[Overrides]) -> List[SweepRun]:
    """A ``SweepRun`` with a unique folder name for every combination (all with the same keys)."""
    if not combinations:
        return []
    short = short_key_names([k for k, _ in combinations[0]])
    digests = [_digest(c) for c in combinations]
    runs = [SweepRun(_fit_length(_grid_name(c, short), d), tuple(c)) for c, d in zip(combinations, digests)]
    return _unique_runs(runs, digests)


def _variant_name(variant: Variant) -> str:
    name = sanitize_value(variant.name)
    if not name:
        raise GridError(f"variant {variant.name!r}: its name has no letter or digit for a folder name")
    return name


def name_variant_runs(variants: Sequence[Variant], combinations: Sequence[Overrides]) -> List[SweepRun]:
    """Every variant (slowest) crossed with every grid combination (``[()]``: no grid), named
    ``<variant>_<grid name>`` (``<variant>`` alone without a grid), unique as ``name_runs``'."""
    combinations = list(combinations) or [()]
    short = short_key_names([k for k, _ in combinations[0]])
    runs, digests = [], []
    for variant in variants:
        prefix = _variant_name(variant)
        for combo in combinations:
            digest = _digest(combo, variant)
            name = _fit_length("_".join(filter(None, (prefix, _grid_name(combo, short)))), digest)
            runs.append(SweepRun(name, tuple(combo), variant.name, variant.overrides))
            digests.append(digest)
    return _unique_runs(runs, digests)


# --------------------------------------------------------------------------- checks

RESERVED_KEYS = ("OUTPUT_DIR",)


def _check_key(key: str, known: Sequence[str], where: str) -> None:
    """Checked here, since yacs only asserts ("Non-existent key") for an unknown override."""
    if key not in known:
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise GridError(f"{where}: {key} is not a config key{hint}")


def _check_extra_opts(axes: Sequence[GridAxis], extra_opts: Sequence[str], known: Sequence[str]) -> None:
    if len(extra_opts) % 2:
        raise GridError(f"extra overrides must be KEY VALUE pairs, got an odd list: {list(extra_opts)}")
    extra_keys = list(extra_opts[0::2])
    for key in RESERVED_KEYS:
        if key in extra_keys or key in {a.key for a in axes}:
            raise GridError(f"{key} is set by the sweep (--output-root/<run>); do not override it")
    for key in extra_keys:
        _check_key(key, known, "extra override")
    for axis in axes:
        if axis.key in extra_keys:
            raise GridError(f"{axis.key} is both a --grid key and an extra override")


def _check_variant(variant: Variant, axes: Sequence[GridAxis], extra_opts: Sequence[str], known) -> None:
    where = f"variant {variant.name}"
    grid_keys, extra_keys = {a.key for a in axes}, set(extra_opts[0::2])
    for key in variant.keys():
        if key in RESERVED_KEYS:
            raise GridError(f"{where} sets {key}, which the sweep sets (--output-root/<run>)")
        _check_key(key, known, where)
        if key in grid_keys:
            raise GridError(f"{where} sets {key}, which is also a --grid key")
        if key in extra_keys:
            raise GridError(f"{where} sets {key}, which is also an extra override (it would win)")


def _check_run(config_file: str, run: SweepRun, extra_opts: Sequence[str]) -> None:
    try:
        cfg = load_config(config_file, run.opts() + list(extra_opts))
        validate_inspose_config(cfg)
    except (ConfigError, ValueError, TypeError, AssertionError) as error:
        raise GridError(f"run {run.name} ({' '.join(run.opts())}): {error}") from None


BUILD_OPTS = ("MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "")


def _check_builds(config_file: str, runs: Sequence[SweepRun], extra_opts: Sequence[str]) -> None:
    """Build every distinct model of the sweep on the CPU, without weights (runs that differ only
    in ``SEED`` build once): a model constructor's error stops the sweep before it starts."""
    built = set()
    for run in runs:
        opts = run.opts() + list(extra_opts)
        architecture = tuple(pair for pair in zip(opts[0::2], opts[1::2]) if pair[0] != SEED_KEY)
        if architecture in built:
            continue
        built.add(architecture)
        try:
            build_model(load_config(config_file, opts + list(BUILD_OPTS)))
        except Exception as error:  # noqa: BLE001  (any constructor error; named below)
            why = f"{type(error).__name__}: {error}"
            raise GridError(f"run {run.name}: the model cannot be built: {why}") from None


def validate_sweep(
    config_file: str,
    axes: Sequence[GridAxis],
    runs: Sequence[SweepRun],
    extra_opts: Sequence[str],
    variants: Sequence[Variant] = (),
) -> None:
    """Raise ``GridError`` (``ConfigError`` for a bad config file) naming the first key, override,
    variant or run that cannot work: keys first, then every run's config, then every model built."""
    known = all_keys(load_config(config_file))
    _check_extra_opts(axes, extra_opts, known)
    for axis in axes:
        _check_key(axis.key, known, f"--grid {axis.key}")
    for variant in variants:
        _check_variant(variant, axes, extra_opts, known)
    for run in runs:
        _check_run(config_file, run, extra_opts)
    _check_builds(config_file, runs, extra_opts)


# --------------------------------------------------------------------------- commands

def _default_train_command() -> List[str]:
    return [sys.executable, str(TRAIN_NET)]


def _default_eval_command() -> List[str]:
    return [sys.executable, str(EVALUATE_RUN)]


@dataclass(frozen=True)
class SweepPlan:
    """What every run of a sweep shares.

    Attributes:
        extra_opts: ``KEY VALUE`` overrides of every run, training and evaluation.
        train_opts: overrides of the training step only (see ``training_only_opts``).
        train_command, eval_command: argv prefixes of the two steps (tests substitute fakes).
    """

    config_file: str
    output_root: str
    extra_opts: Sequence[str] = ()
    train_opts: Sequence[str] = ()
    train_command: Sequence[str] = field(default_factory=_default_train_command)
    eval_command: Sequence[str] = field(default_factory=_default_eval_command)

    def folder(self, run: SweepRun) -> str:
        return os.path.join(self.output_root, run.name)

    def train_argv(self, run: SweepRun) -> List[str]:
        folder = self.folder(run)
        opts = ["OUTPUT_DIR", folder, *run.opts(), *self.extra_opts, *self.train_opts]
        return [*self.train_command, "--config-file", self.config_file, "--resume", *opts]

    def eval_argv(self, run: SweepRun) -> List[str]:
        folder = self.folder(run)
        weights = os.path.join(folder, "model_final.pth")
        opts = ["OUTPUT_DIR", folder, *run.opts(), *self.extra_opts, "MODEL.WEIGHTS", weights]
        output = os.path.join(folder, FINAL_METRICS_FILE)
        return [*self.eval_command, "--config-file", self.config_file, "--output", output, *opts]


def training_only_opts(cfg, grid_keys: Sequence[str]) -> List[str]:
    """``DATASETS.TEST ()`` for training when it would only evaluate once, at its end.

    detectron2's trainer always evaluates after its last iteration; with ``TEST.EVAL_PERIOD 0``
    that duplicates the sweep's evaluation step, so the training step is given no test set.
    With periodic evaluation (or ``TEST.EVAL_PERIOD`` varied by the grid) training keeps it.
    """
    if cfg.TEST.EVAL_PERIOD > 0 or "TEST.EVAL_PERIOD" in grid_keys or "DATASETS.TEST" in grid_keys:
        return []
    return ["DATASETS.TEST", "()"]


def _runs_of(axes: Sequence[GridAxis], variants: Sequence[Variant]) -> List[SweepRun]:
    if variants:
        return name_variant_runs(variants, grid_combinations(axes) if axes else [()])
    return name_runs(grid_combinations(axes))


def plan_sweep(
    config_file: str,
    grid_args: Sequence[str],
    output_root: str,
    extra_opts: Sequence[str] = (),
    num_gpus: int = 1,
    variants_file: str = "",
) -> Tuple[SweepPlan, List[SweepRun]]:
    """(plan, runs) of a sweep's command line, validated. ``grid_args`` may be empty when
    ``variants_file`` (``--variants``, relative to the working directory) is given.

    Raises:
        GridError: a malformed grid or variants file, an unknown key, a run InsPose cannot build,
            ``num_gpus`` < 1.
        ConfigError: a config file that cannot be loaded.
    """
    if num_gpus < 1:
        raise GridError(f"--num-gpus must be >= 1, got {num_gpus}")
    variants = load_variants(variants_file) if variants_file else []
    axes = parse_grid(grid_args) if grid_args or not variants else []
    runs = _runs_of(axes, variants)
    extra_opts = list(extra_opts or [])
    validate_sweep(config_file, axes, runs, extra_opts, variants)
    varied = [a.key for a in axes] + [k for v in variants for k in v.keys()]
    train_opts = training_only_opts(load_config(config_file, extra_opts), varied)
    plan = SweepPlan(config_file, os.path.abspath(output_root), tuple(extra_opts), tuple(train_opts))
    return plan, runs
