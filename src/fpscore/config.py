"""The workflow configuration: schema, defaults, validation (one source of truth).

workflow/schemas/config.schema.yaml gives every key a type, a description and a
default. The defaults are the embedded configuration (config/config.yaml restates
them, a test keeps the two equal) and the defaults of every `fpscore` option.
"""
from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


@lru_cache(maxsize=1)
def load_schema() -> dict:
    if not SCHEMA_PATH.exists():
        raise FileNotFoundError(f"config schema not found at {SCHEMA_PATH} (is fpscore installed editable "
                                "from the repository?)")
    # libyaml's loader where PyYAML has it: 5x faster, and every command reads the schema at start-up
    return yaml.load(SCHEMA_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


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


def validate(config: dict, source: str = "config") -> dict:
    """Fill defaults and validate; a bad value raises ValueError naming the key path."""
    import jsonschema  # only validation needs it (keeps `fpscore --help` fast)

    schema = load_schema()
    config = _fill(schema, copy.deepcopy(config or {}))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '<top level>'}: {e.message}" for e in errors]
        raise ValueError(f"invalid {source}:\n" + "\n".join(lines))
    return config


def load_config(path: str | Path) -> dict:
    """Read a YAML config file, fill defaults, validate."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ValueError(f"config file {path} is not valid YAML: {err}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ValueError(f"config file {path} must hold a mapping of sections, got {type(raw).__name__}")
    return validate(raw or {}, source=str(path))


_REQUIRED = object()


def _flow(value: Any) -> str:
    if value is _REQUIRED:
        return "(required)"
    if value is None:
        return "(unset)"
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def _rows(schema: dict, prefix: str = ""):
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            yield path, "section", "", sub.get("description", "")
            yield from _rows(sub, path + ".")
            continue
        items = sub.get("items")
        if sub.get("type") == "array" and isinstance(items, dict) and "properties" in items:
            yield path, "list of entries", _flow(sub.get("default")), " ".join(sub.get("description", "").split())
            yield from _rows(items, path + "[].")
        else:
            kind = sub.get("type", "")
            if "enum" in sub:
                kind = " \\| ".join(map(str, sub["enum"]))
            elif kind == "array" and isinstance(sub.get("items"), dict):
                kind = f"list of {sub['items'].get('type', 'object')}"
            yield path, kind, _flow(sub.get("default", _REQUIRED)), " ".join(sub.get("description", "").split())


def option_flags() -> dict[str, list[str]]:
    """Config key -> the `fpscore` options generated from it ("train --lr"), read off the parser."""
    import argparse

    from fpscore.cli import build_parser

    flags: dict[str, list[str]] = {}
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command, parser in commands.items():
        for action in parser._actions:
            keys = getattr(action, "schema_key", None)
            for key in [keys] if isinstance(keys, str) else keys or []:
                flags.setdefault(key, []).append(f"{command} {action.option_strings[0]}")
    return flags


def render_markdown() -> str:
    """The key reference of config/README.md, rendered from the schema."""
    flags = option_flags()
    lines = ["| key | type | default | `fpscore` option | description |", "| --- | --- | --- | --- | --- |"]
    for path, kind, default, description in _rows(load_schema()):
        if kind == "section":
            lines.append(f"| **{path}** | | | | {description} |")
        else:
            default = default.replace("|", "\\|")
            options = "<br>".join(f"`{flag}`" for flag in flags.get(path, [])) or "(workflow only)"
            lines.append(f"| `{path}` | {kind} | `{default}` | {options} | {description} |")
    return "\n".join(lines) + "\n"


README_PATH = REPO_ROOT / "config" / "README.md"
BEGIN, END = "<!-- BEGIN KEYS (generated from workflow/schemas/config.schema.yaml) -->", "<!-- END KEYS -->"


def readme_keys_section(text: str) -> str:
    """The generated part of config/README.md (between the BEGIN/END markers)."""
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:stop].strip("\n") + "\n"


CONFIG_PATH = REPO_ROOT / "config" / "config.yaml"


def update_embedded_config(path: Path = CONFIG_PATH) -> None:
    """Rewrite config/config.yaml from the schema defaults, keeping its header comment."""
    text = path.read_text()
    header = text[: text.index("\ndata:")].rstrip("\n") if "\ndata:" in text else ""
    sections = [yaml.safe_dump({name: value}, sort_keys=False, default_flow_style=None, width=100)
                for name, value in schema_defaults().items()]
    path.write_text(header + "\n\n" + "\n".join(sections))


def update_readme(path: Path = README_PATH) -> None:
    """Re-render the key table of config/README.md from the schema (`make config-docs`)."""
    text = path.read_text()
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    path.write_text(text[:start] + "\n" + render_markdown() + text[stop:])


if __name__ == "__main__":  # `make config-docs`
    update_embedded_config()
    update_readme()
