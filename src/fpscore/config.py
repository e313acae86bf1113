"""The workflow configuration: schema, defaults, validation (one source of truth).

The schema, ``config.schema.yaml`` inside this package (package data, read with
importlib.resources: it ships with every install), gives every key a type, a
description and a default, and defines once, under ``$defs``, the allowed values of
every enumerated option. The defaults are the embedded configuration
(config/config.yaml restates them, a test keeps the two equal), the defaults of every
`fpscore` option and of every settings dataclass (``FPParams``, ``TrainSettings``).
The Snakefile validates the workflow config against the same file (``validate``);
dataclasses and command-line options check their values against it (``check``).
"""
from __future__ import annotations

import copy
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

SCHEMA_FILE = "config.schema.yaml"


def schema_path() -> Path:
    """The path of the package's schema file (what the Snakefile validates against)."""
    return Path(str(resources.files("fpscore") / SCHEMA_FILE))


@lru_cache(maxsize=1)
def raw_schema() -> dict:
    """The schema as written (with its $defs and $refs): what jsonschema validates a config against."""
    text = resources.files("fpscore").joinpath(SCHEMA_FILE).read_text()
    # libyaml's loader where PyYAML has it: 5x faster, and every command reads the schema at start-up
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _resolve(node: Any, defs: dict) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        out = {}
        if ref is not None:
            if not ref.startswith("#/$defs/") or ref.removeprefix("#/$defs/") not in defs:
                raise KeyError(f"config schema: unknown reference {ref!r}")
            out.update(_resolve(defs[ref.removeprefix("#/$defs/")], defs))
        out.update({k: _resolve(v, defs) for k, v in node.items() if k not in ("$ref", "$defs")})
        return out
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """The schema with every $ref replaced by the definition it names (what the walkers read:
    defaults, option generation, documentation)."""
    schema = raw_schema()
    return _resolve(schema, schema.get("$defs", {}))


def enum(name: str) -> tuple:
    """The allowed values of the schema's ``$defs.<name>`` (a tuple, in the schema's order)."""
    try:
        return tuple(raw_schema()["$defs"][name]["enum"])
    except KeyError:
        raise KeyError(f"config schema has no enumeration $defs.{name}") from None


def _defaults(schema: dict) -> Any:
    if schema.get("type") == "object" and "properties" in schema:
        out = copy.deepcopy(schema.get("default", {}))
        for key, sub in schema["properties"].items():
            value = _defaults(sub)
            if value is not None:
                out.setdefault(key, value)
        return out
    return copy.deepcopy(schema.get("default"))


def schema_defaults() -> dict:
    """Nested dict of every default in the schema (sections data, scores, learn, evaluate, experiments)."""
    return _defaults(load_schema())


def schema_node(path: str) -> dict:
    """The schema node of a dotted key path ("scores.projection.rank", "experiments.denoise[].protocol")."""
    node = load_schema()
    for part in path.split("."):
        try:
            node = node["properties"][part.removesuffix("[]")]
        except KeyError:
            raise KeyError(f"schema has no key {path!r} (at {part!r})") from None
        if part.endswith("[]"):  # a field of each entry of a list ("experiments.denoise[].protocol")
            node = node["items"]
    return node


def schema_default(path: str) -> Any:
    """The default of one key by its dotted path ("scores.sigma"): dataclass defaults come from here."""
    return copy.deepcopy(_defaults(schema_node(path)))


def _fill(schema: dict, instance: Any) -> Any:
    if isinstance(instance, dict) and schema.get("type") == "object":
        for key, sub in schema.get("properties", {}).items():
            if key not in instance and _defaults(sub) is not None:
                instance[key] = _defaults(sub)
            if key in instance:
                instance[key] = _fill(sub, instance[key])
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        instance = [_fill(schema["items"], item) for item in instance]
    return instance


@lru_cache(maxsize=1)
def _validator_class():
    """Draft 2020-12 with numpy scalars accepted (an np.int64 is an integer), every number finite
    (NaN and inf would pass every bound of JSON Schema, so they are refused as numbers) and no
    float an integer."""
    import jsonschema
    import numpy as np

    def is_number(checker, value):
        return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
                and math.isfinite(value))

    def is_integer(checker, value):  # 20.0 is not an integer here (range(20.0) fails)
        return is_number(checker, value) and isinstance(value, (int, np.integer))

    def is_boolean(checker, value):
        return isinstance(value, (bool, np.bool_))

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine_many({"number": is_number, "integer": is_integer, "boolean": is_boolean})
    return jsonschema.validators.extend(base, type_checker=checker)


def validate(config: dict, source: str = "config") -> dict:
    """Fill defaults and validate; a bad value raises ValueError naming the key path."""
    config = _fill(load_schema(), copy.deepcopy(config or {}))
    validator = _validator_class()(raw_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '<top level>'}: {e.message}" for e in errors]
        raise ValueError(f"invalid {source}:\n" + "\n".join(lines))
    return config


def load_config(path: str | Path) -> dict:
    """Read a YAML config file, fill defaults, validate."""
    from fpscore.fileio import read_mapping

    return validate(read_mapping(path, "config file", yaml.safe_load, (yaml.YAMLError,), "YAML"), source=str(path))


# ---- one value against its key ----------------------------------------------------------------
_ARTICLES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
             "null": "null", "array": "a list", "object": "a mapping"}


def _bounds(node: dict) -> str:
    low = ("[", node["minimum"]) if "minimum" in node else ("(", node["exclusiveMinimum"]) \
        if "exclusiveMinimum" in node else None
    high = ("]", node["maximum"]) if "maximum" in node else (")", node["exclusiveMaximum"]) \
        if "exclusiveMaximum" in node else None
    if low and high:
        return f" in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    if low:
        return f" {'>=' if low[0] == '[' else '>'} {low[1]:g}"
    if high:
        return f" {'<=' if high[0] == ']' else '<'} {high[1]:g}"
    return ""


def expected(node: dict) -> str:
    """What a schema leaf accepts, in words ("an integer >= 2", "one of picard, newton")."""
    if "enum" in node:
        return "one of " + ", ".join(map(str, node["enum"]))
    kinds = node.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    words = []
    for kind in kinds:
        if kind == "array":
            items = node.get("items", {})
            least = f"at least {node['minItems']} of " if node.get("minItems") else ""
            words.append(f"a list of {least}{expected(items) if items else 'values'}")
        elif kind in ("integer", "number"):
            words.append(_ARTICLES[kind] + _bounds(node))
        else:
            words.append(_ARTICLES.get(kind, kind))
    return " or ".join(words) or "any value"


@lru_cache(maxsize=None)
def _leaf_validator(path: str):
    return _validator_class()(schema_node(path))


def violation(path: str, value: Any) -> str | None:
    """Why ``value`` breaks the schema key ``path`` ("expected an integer >= 2, got 0"), or None."""
    if _leaf_validator(path).is_valid(value):
        return None
    return f"expected {expected(schema_node(path))}, got {value!r}"


def check(section: str, values: dict, name=lambda key, path: path) -> None:
    """Check each of ``values`` (keys of the schema section ``section``) against the schema;
    ValueError naming every bad key ("scores.rtol: expected a number in (0, 1), got 1.5").
    ``name(key, path)`` is how a key is named in the message (an option's flag, say)."""
    problems = []
    for key, value in values.items():
        path = f"{section}.{key}"
        why = violation(path, value)
        if why:
            problems.append(f"{name(key, path)}: {why}")
    if problems:
        raise ValueError("; ".join(problems))
