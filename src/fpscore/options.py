"""Command-line options generated from the config schema, and config -> command line.

The schema (fpscore/config.schema.yaml) is the one source of every option's
name, type, allowed values, default and help text. A ``Group`` names a schema section
(and a flag prefix); ``add_group`` adds one argparse option per key of it,
``group_values`` reads the parsed values back as a dict keyed like the config, and
``command_line`` turns a config section into the words a workflow rule passes, so
that a rule's ``params:`` is a single call and the command typed by hand does what
the workflow does. The option of key ``k`` is ``--{prefix}{k}`` with ``_`` -> ``-``.
"""
from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from typing import Any, Iterable

from fpscore.config import schema_node, violation

_TYPES = {"integer": int, "number": float, "string": str}


def _python_type(kind: Any) -> type:
    """The argparse type of a schema type (a union such as [string, integer] stays a string)."""
    return _TYPES.get(kind, str) if isinstance(kind, str) else str


@dataclass(frozen=True)
class Group:
    """The options of one schema section.

    section: dotted path of an object in the schema ("learn.train"); prefix: flag prefix
    ("sampler-"); keys: only these keys (None: every key that is not itself a section);
    exclude: keys the command does not take (workflow-only keys).
    """

    section: str
    prefix: str = ""
    keys: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()

    def flag(self, key: str) -> str:
        return "--" + (self.prefix + key).replace("_", "-")

    def dest(self, key: str) -> str:
        return (self.prefix + key).replace("-", "_")

    def leaves(self) -> list[tuple[str, dict]]:
        """(key, schema node) of every option of the group, in schema order."""
        props = schema_node(self.section).get("properties", {})
        keys = self.keys if self.keys is not None else [k for k, n in props.items() if not _is_section(n)]
        missing = [k for k in keys if k not in props]
        if missing:
            raise KeyError(f"option group {self.section}: no schema key(s) {missing}")
        return [(k, props[k]) for k in keys if k not in self.exclude]


def _is_section(node: dict) -> bool:
    items = node.get("items")
    return node.get("type") == "object" or (node.get("type") == "array" and isinstance(items, dict)
                                             and items.get("type") == "object")


def _help(node: dict) -> str:
    return " ".join(node.get("description", "").split()).replace("%", "%%")


def option_kwargs(node: dict) -> dict[str, Any]:
    """argparse keyword arguments (type, nargs, choices, action) of one schema leaf."""
    kind = node.get("type")
    if kind == "boolean":
        return {"action": argparse.BooleanOptionalAction}
    if kind == "array":
        items = node.get("items", {})
        kwargs: dict[str, Any] = {"nargs": "+" if node.get("minItems", 0) >= 1 else "*",
                                  "type": _python_type(items.get("type"))}
        if "enum" in items:
            kwargs["choices"] = items["enum"]
        return kwargs
    kwargs = {"type": _python_type(kind)}
    if "enum" in node:
        kwargs["choices"] = node["enum"]
    return kwargs


def add_group(parser, group: Group, *, defaults: str = "schema", title: str | None = None) -> None:
    """Add the options of ``group`` to ``parser`` (or to a new argument group named ``title``).

    defaults: "schema" (the schema default), "none" (None: the command fills it in later,
    e.g. from a per-dataset section) or "suppress" (absent unless given: an override).
    """
    target = parser.add_argument_group(title) if title else parser
    for key, node in group.leaves():
        kwargs = option_kwargs(node)
        text = f"{_help(node) or key} [config {group.section}.{key}]"
        if defaults == "schema":
            kwargs["default"] = node.get("default")
            if node.get("type") != "boolean":  # BooleanOptionalAction adds its own default text
                text += " (default: %(default)s)"
        elif defaults == "suppress":
            kwargs["default"] = argparse.SUPPRESS
        else:
            kwargs["default"] = None
        if "choices" in kwargs and kwargs.get("nargs") is None:
            kwargs["metavar"] = "{" + ",".join(map(str, kwargs["choices"])) + "}"
        action = target.add_argument(group.flag(key), dest=group.dest(key), help=text, **kwargs)
        action.schema_key = f"{group.section}.{key}"  # for the consistency test of options and schema


def group_values(args: argparse.Namespace, group: Group) -> dict[str, Any]:
    """The parsed options of ``group`` as {config key: value} (suppressed ones left out), checked
    against the schema (``fpscore.config.violation``): a bad value raises ValueError naming the
    option and key."""
    values = {}
    for key, _ in group.leaves():
        if hasattr(args, group.dest(key)):
            value = getattr(args, group.dest(key))
            why = None if value is None else violation(f"{group.section}.{key}", value)
            if why:
                raise ValueError(f"{group.flag(key)}: {why} (config key {group.section}.{key})")
            values[key] = value
    return values


def _words(flag: str, node: dict, value: Any) -> list[str]:
    if node.get("type") == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"{flag}: expected true or false, got {value!r}")
        return [flag] if value else ["--no-" + flag[2:]]
    if isinstance(value, (list, tuple)):
        return [flag, *map(str, value)]
    return [flag, str(value)]


def command_line(section: dict, group: Group) -> list[str]:
    """The command-line words restating ``section`` (the config's values of ``group.section``)."""
    words: list[str] = []
    for key, node in group.leaves():
        if key in section and section[key] is not None:
            words += _words(group.flag(key), node, section[key])
    return words


def config_section(config: dict, path: str) -> dict:
    """config[a][b]... of a dotted path (a validated config has every section)."""
    for part in path.split("."):
        config = config[part]
    return config


def command_text(config: dict, groups: Iterable[Group]) -> str:
    """The shell-quoted options restating ``config`` for every group (a rule's ``params:``)."""
    return shlex.join(word for group in groups for word in command_line(config_section(config, group.section), group))
