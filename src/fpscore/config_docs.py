"""config/README.md's key table and config/config.yaml, rendered from the schema (`make config-docs`).

Repository upkeep, not used by the workflow: ``python -m fpscore.config_docs [REPO]`` rewrites
<REPO>/config/config.yaml from the schema defaults (keeping its header comment) and the key
table of <REPO>/config/README.md; a test checks both are current.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from fpscore.config import load_schema, schema_defaults

BEGIN, END = "<!-- BEGIN KEYS (generated from src/fpscore/config.schema.yaml) -->", "<!-- END KEYS -->"
_REQUIRED = object()


def _flow(value) -> str:
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
    import argparse as _argparse

    from fpscore.cli import build_parser

    flags: dict[str, list[str]] = {}
    commands = next(a for a in build_parser()._actions if isinstance(a, _argparse._SubParsersAction)).choices
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


def update_embedded_config(path: Path) -> None:
    """Rewrite config/config.yaml from the schema defaults, keeping its header comment."""
    text = path.read_text()
    header = text[: text.index("\ndata:")].rstrip("\n") if "\ndata:" in text else ""
    sections = [yaml.safe_dump({name: value}, sort_keys=False, default_flow_style=None, width=100)
                for name, value in schema_defaults().items()]
    path.write_text(header + "\n\n" + "\n".join(sections))


def update_readme(path: Path) -> None:
    """Re-render the key table of config/README.md from the schema."""
    text = path.read_text()
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    path.write_text(text[:start] + "\n" + render_markdown() + text[stop:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fpscore.config_docs", description=__doc__.splitlines()[0])
    parser.add_argument("repo", nargs="?", default=".", type=Path, help="the repository (default: .)")
    repo = parser.parse_args(argv).repo
    update_embedded_config(repo / "config" / "config.yaml")
    update_readme(repo / "config" / "README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
