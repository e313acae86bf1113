"""The schema is the one source of every default: a walk over the schema checks every option of the
`fpscore` command, every settings dataclass and every function of the package whose argument is
named after a config key against the schema's default of that key."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import pkgutil

import pytest

import fpscore
from fpscore import config as cfg
from fpscore.cli import build_parser


def _leaves(node, path=""):
    props = node.get("properties")
    if props is None or node.get("type") == "array":
        yield path, node
        return
    for key, sub in props.items():
        yield from _leaves(sub, f"{path}.{key}" if path else key)


LEAVES = dict(_leaves(cfg.load_schema()))


def _same(value, default) -> bool:
    return (list(value) if isinstance(value, tuple) else value) == default


def test_every_cli_default_is_the_schema_default():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    checked = 0
    for command, sub in commands.items():
        for action in sub._actions:
            keys = getattr(action, "schema_key", None)
            for key in [keys] if isinstance(keys, str) else keys or []:
                assert key in LEAVES or "[]" in key, (command, action.option_strings, key)
                if action.default not in (None, argparse.SUPPRESS):
                    assert _same(action.default, cfg.schema_default(key)), (command, action.option_strings, key)
                    checked += 1
    assert checked > 60


# Settings dataclasses: (class, schema section, fields that are no key of it)
DATACLASSES = [
    ("fpscore.fokker_planck.params:FPParams", "scores", ()),
    ("fpscore.diffusion.training:TrainSettings", "learn.train", ()),
    ("fpscore.diffusion.unet:UNetConfig", "learn.unet", ("in_channels", "resolution")),
    ("fpscore.diffusion.ddpm:DDPMSchedule", "learn.ddpm", ()),
    ("fpscore.diffusion.sde:VESDE", "scores", ()),
]


@pytest.mark.parametrize("target, section, own", DATACLASSES)
def test_every_dataclass_default_is_the_schema_default(target, section, own):
    module, name = target.split(":")
    cls = getattr(importlib.import_module(module), name)
    for field in dataclasses.fields(cls):
        if field.name in own:
            continue
        key = f"{section}.{field.name}"
        assert key in LEAVES, f"{target}.{field.name}: no schema key {key}"
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        assert _same(default, cfg.schema_default(key)), f"{target}.{field.name} = {default!r}, schema {key}"
    cls()  # the schema's defaults pass the schema's checks


# Arguments named after a config key whose literal default means something else (not that key).
NOT_CONFIG = {
    "device": "a torch device of the caller ('cpu'), not scores.batched.device",
    "progression_steps": "0 = no progression states (the sample rule passes learn.sampler.progression_steps)",
    "n_times": "figures.schematic / generation_progression: columns drawn, not scores.n_times",
    "n_samples": "figures.generation_progression: rows drawn, not learn.sampler.n_samples",
    "method": "subspace.projected_guess(method=...): the projected guess, scores.projection.guess",
    "fpscore.fid:frechet_distance.eps": "a numerical offset of the covariances, not scores.eps",
}
UNSET = (None, "")  # "not given: the caller's value" (compute_scores(nonlinear=None) takes params.nonlinear)
# Literal defaults that contradict the schema and are known (none left).
PENDING: dict = {}


def _arguments():
    """(module, qualified name, argument, default) of every argument of the package named after a key."""
    names = {}
    for path in LEAVES:
        if "[]" not in path:
            names.setdefault(path.rsplit(".", 1)[-1], []).append(path)
    for info in pkgutil.walk_packages(fpscore.__path__, "fpscore."):
        try:
            module = importlib.import_module(info.name)
        except ImportError as err:  # PETSc-only modules on a machine without petsc4py
            if "petsc4py" in str(err):
                continue
            raise
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__ or not callable(obj):
                continue
            targets = [(name, obj)] + ([(f"{name}.{n}", f) for n, f in vars(obj).items() if inspect.isfunction(f)]
                                       if inspect.isclass(obj) else [])
            for qualname, target in targets:
                try:
                    params = inspect.signature(target).parameters.values()
                except (TypeError, ValueError):
                    continue
                for p in params:
                    if p.name in names and p.default is not inspect.Parameter.empty:
                        yield module.__name__, qualname, p.name, p.default, names[p.name]


def test_no_function_default_contradicts_the_schema():
    wrong, pending = [], []
    for module, qualname, arg, default, keys in _arguments():
        if (default in UNSET or any(_same(default, cfg.schema_default(k)) for k in keys) or arg in NOT_CONFIG
                or f"{module}:{qualname}.{arg}" in NOT_CONFIG):
            continue
        entry = f"{module}:{qualname}({arg}={default!r}) vs schema {[(k, cfg.schema_default(k)) for k in keys]}"
        (pending if (module, qualname, arg) in PENDING else wrong).append(entry)
    assert not wrong, "defaults that contradict the schema:\n" + "\n".join(wrong)
    # a known contradiction listed in PENDING may only disappear, never grow
    assert len(pending) <= len(PENDING)


def test_the_leaf_functions_take_the_schema_defaults():
    from fpscore.diffusion import methods, sampling

    params = inspect.signature(sampling.ode_sample).parameters
    for key in ("method", "rtol", "atol", "heun_steps", "denoise"):
        assert params[key].default == cfg.schema_default(f"learn.sampler.{key}"), key
    ddpm = inspect.signature(methods.DDPMMethod).parameters
    assert (ddpm["sampler"].default, ddpm["ddim_steps"].default) == (cfg.schema_default("learn.ddpm.sampler"),
                                                                       cfg.schema_default("learn.ddpm.ddim_steps"))
