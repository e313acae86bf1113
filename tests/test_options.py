"""The schema is the one source of every option: each config key has an option (or is the
workflow's own), each option of a config key has its schema default, the rules' command
lines parse back to the config, and the package's name lists equal the schema's enums."""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fpscore import config as cfg
from fpscore import names
from fpscore.cli import build_parser
from fpscore.cli import data as data_cli
from fpscore.cli import figure as figure_cli
from fpscore.cli import metrics as metrics_cli
from fpscore.cli import table as table_cli
from fpscore.cli import learn as learn_cli
from fpscore.cli import scores as scores_cli
from fpscore.options import Group, add_group, command_line, command_text, config_section, group_values

REPO = Path(__file__).resolve().parents[1]
# Keys only the workflow reads (which sets, sizes, solvers and experiments to run): no option.
WORKFLOW_KEYS = ("data.datasets", "data.resolutions", "data.dataset_resolutions.", "scores.benchmark_solvers", "scores.per_dataset.",
                 "learn.dsm.train", "experiments.")
CONFIGS = ["config/config.yaml", "config/paper.yaml", "tests/configs/tiny.yaml"]


def _leaves(node, path=""):
    """Dotted paths of every schema key that is not a section."""
    props = node.get("properties")
    if props is None or node.get("type") == "array":
        yield path
        return
    for key, sub in props.items():
        yield from _leaves(sub, f"{path}.{key}" if path else key)


def _commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def _generated():
    """(command, action, schema key) of every option generated from the schema."""
    for command, parser in _commands().items():
        for action in parser._actions:
            keys = getattr(action, "schema_key", None)
            for key in [keys] if isinstance(keys, str) else keys or []:
                yield command, action, key


def test_every_config_key_has_an_option():
    covered = {key for _, _, key in _generated()}
    missing = [key for key in _leaves(cfg.load_schema())
               if key not in covered and not key.startswith(WORKFLOW_KEYS)]
    assert not missing, f"config keys without a command-line option: {missing}"


def test_generated_options_have_schema_keys_and_defaults():
    for command, action, key in _generated():
        node = cfg.schema_node(key)  # raises for an option without a schema key
        if action.default not in (None, argparse.SUPPRESS):
            assert action.default == node["default"], (command, action.option_strings, key)
        if "enum" in node:
            assert list(action.choices) == node["enum"], (command, key)


def test_no_hand_written_option_shadows_a_config_key():
    """An option written by hand with the flag of a config key would carry its own default."""
    flags = {}
    for module in (scores_cli, learn_cli, metrics_cli, table_cli, figure_cli, data_cli):
        for group in [v for v in vars(module).values() if isinstance(v, Group)]:
            for key, _ in group.leaves():
                flags[group.flag(key)] = f"{group.section}.{key}"
    for command, parser in _commands().items():
        for action in parser._actions:
            if getattr(action, "schema_key", None) is None:
                shadowed = [f for f in action.option_strings if f in flags]
                assert not shadowed, f"fpscore {command} {shadowed}: hand-written option of {flags[shadowed[0]]}"


def test_a_default_that_differs_from_the_schema_fails_the_check():
    parser = argparse.ArgumentParser()
    add_group(parser, Group("learn.train", keys=("batch_size",)))
    action = parser._actions[-1]
    assert action.default == cfg.schema_default("learn.train.batch_size")
    action.default = 32  # what the hand-written CLI once had
    assert action.default != cfg.schema_node(action.schema_key)["default"]


def _raw_nodes(node, path=""):
    """(path, node) of every node of the schema as written (before $ref resolution), $defs left out."""
    yield path, node
    if isinstance(node, dict):
        for key, sub in node.items():
            if key != "$defs":
                yield from _raw_nodes(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from _raw_nodes(sub, f"{path}/{i}")


def test_every_enum_is_defined_once_and_the_names_read_it():
    """The allowed values live in $defs only: no key lists its own enum, and every name list of
    fpscore.names is its $defs entry (the same tuple, not a copy that could drift)."""
    inline = [path for path, node in _raw_nodes(cfg.raw_schema()) if isinstance(node, dict) and "enum" in node]
    assert not inline, f"enums outside $defs (use $ref): {inline}"
    defs = cfg.raw_schema()["$defs"]
    listed = {value: key for key, value in vars(names).items() if key.isupper() and isinstance(value, tuple)}
    for name, node in defs.items():
        assert tuple(node["enum"]) in listed, f"$defs.{name} has no name list in fpscore.names"
    assert names.SOLVERS == tuple(cfg.schema_node("scores.solver")["enum"]) == cfg.enum("solver")
    assert cfg.schema_node("data.datasets")["items"]["enum"] == list(names.DATASETS)
    assert set(cfg.schema_node("data.dataset_resolutions")["properties"]) == set(names.DATASETS)
    assert set(cfg.schema_node("scores.per_dataset")["properties"]) == set(names.DATASETS)
    assert set(names.TIME_SAMPLINGS) < set(names.DSM_TIMES)


@pytest.mark.parametrize("factory, section, renamed", [
    ("fpscore.solvers:make_solver", "scores", {}),
    ("fpscore.solvers.ksp:KspSolver", "scores", {"options": "ksp_options"}),
    ("fpscore.solvers.projection:ProjectionSolver", "scores.projection", {}),
    ("fpscore.solvers.batched:BatchedSolver", "scores.batched", {}),
])
def test_solver_defaults_are_the_schema_defaults(factory, section, renamed):
    """A solver built in Python without a setting gets the schema's default, as the CLI does."""
    import importlib
    import inspect

    module, name = factory.split(":")
    params = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    checked = 0
    for arg, p in params.items():
        key = renamed.get(arg, arg)
        for path in (f"{section}.{key}", f"scores.{key}"):
            try:
                expected = cfg.schema_default(path)
            except KeyError:
                continue
            if isinstance(expected, dict):  # a settings section (None: the constructor's schema defaults)
                break
            assert p.default == expected, f"{factory}({arg}=...) defaults to {p.default!r}, schema {path}: {expected!r}"
            checked += 1
            break
    assert checked >= 3, f"{factory}: only {checked} argument(s) matched a schema key"


@pytest.mark.parametrize("config_file", CONFIGS)
def test_rule_command_lines_parse_back_to_the_config(config_file):
    """Every option a rule passes, parsed by `fpscore`, gives back the config's value of every key."""
    config = cfg.load_config(REPO / config_file)
    parser = build_parser()

    def check(argv, groups):
        args = parser.parse_args(argv)
        for group in groups:
            section = config_section(config, group.section)
            assert group_values(args, group) == {k: section[k] for k, _ in group.leaves()}, group

    files = ["--images", "i.npz", "--out", "o.npz", "--log", "l.csv"]
    check(["scores", *files, "--solver", "ksp", *shlex.split(command_text(config, scores_cli.RULE_GROUPS))],
          scores_cli.RULE_GROUPS)
    check(["train", "--method", "ours", *files[:4], "--log", "l.csv", "--stop", "steps",
           *shlex.split(command_text(config, learn_cli.TRAIN_GROUPS))], learn_cli.TRAIN_GROUPS)
    check(["sample", "--model", "m.pt", "--out", "s.npz", *shlex.split(command_text(config, learn_cli.SAMPLE_GROUPS))],
          learn_cli.SAMPLE_GROUPS)
    check(["fid", "--samples", "s", "--references", "r", "--experiment", "e", "--method", "ours", "--out", "f",
           *shlex.split(command_text(config, [metrics_cli.FID]))], [metrics_cli.FID])
    for dataset in names.DATASETS:
        args = parser.parse_args(["data", "--dataset", dataset, "--resolution", "8", "--out", "o", "--manifest", "m",
                                  *data_cli.rule_options(dataset, config["data"])])
        given = {key: getattr(args, key) for key in data_cli._taken_by()}
        expected = {k: v for k, v in config["data"][dataset].items() if not (k == "local_path" and not v)}
        assert data_cli.dataset_options(dataset, given) == expected


def test_every_default_passes_its_key_and_bad_values_are_explained():
    for key in _leaves(cfg.load_schema()):
        node = cfg.schema_node(key)
        if node.get("default") is not None and "[]" not in key:
            assert cfg.violation(key, node["default"]) is None, key
    assert cfg.violation("scores.rtol", 1.5) == "expected a number in (0, 1), got 1.5"
    assert cfg.violation("scores.n_times", 20.0) == "expected an integer >= 2, got 20.0"
    assert cfg.violation("scores.sigma", float("inf")) == "expected a number > 1, got inf"
    assert cfg.violation("scores.nonlinear", "secant") == "expected one of picard, newton, got 'secant'"
    assert cfg.violation("data.resolutions", [8, 2]) == "expected a list of at least 1 of an integer >= 4, got [8, 2]"
    assert cfg.violation("experiments.solver_images", None) is None
    assert cfg.violation("learn.train.ema_decay", 1.0) and cfg.violation("learn.train.ema_decay", 0.999) is None


def test_command_line_words_of_each_kind():
    config = cfg.schema_defaults()
    words = command_line(dict(config["scores"], warm_start=False), Group("scores"))
    assert "--no-warm-start" in words and "--extrapolate" in words
    assert words[words.index("--ksp-options") + 1] == config["scores"]["ksp_options"]
    unet = command_line(config["learn"]["unet"], Group("learn.unet"))
    assert unet[unet.index("--channel-mults") + 1:unet.index("--channel-mults") + 4] == ["1", "2", "2"]


def test_a_bad_option_value_names_the_option_and_key(capsys):
    from fpscore.cli import main

    assert main(["train", "--method", "ddpm", "--images", "x.npz", "--out", "m.pt", "--log", "l.csv", "--stop",
                 "steps", "--max-steps", "1", "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "--batch-size" in err and "learn.train.batch_size" in err


def test_the_parser_imports_no_heavy_dependency():
    code = ("import sys; from fpscore.cli import build_parser; build_parser(); "
            "print(' '.join(m for m in ('torch', 'petsc4py', 'pandas', 'matplotlib', 'scipy') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []

