"""The schema, the embedded config, config/README.md and the Snakefile agree; bad values are named."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fpscore import config as cfg

REPO = Path(__file__).resolve().parents[1]


def _walk(schema, path=""):
    yield path, schema
    for key, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{key}" if path else key)
    items = schema.get("items")
    if isinstance(items, dict) and "properties" in items:
        yield from _walk(items, f"{path}[]")


def test_every_key_has_type_description_default():
    for path, sub in _walk(cfg.load_schema()):
        if not path or path.endswith("[]"):
            continue
        assert "description" in sub, path
        assert "type" in sub or "enum" in sub, path
        if sub.get("type") == "object":
            assert sub.get("additionalProperties") is False, path
        parent_items = path.rsplit(".", 1)[0].endswith("[]")
        required = parent_items and path.rsplit(".", 1)[1] in ("dataset", "resolution")
        assert "default" in sub or required, path


def test_embedded_config_equals_schema_defaults():
    embedded = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert cfg.validate(embedded) == cfg.schema_defaults()
    assert embedded == cfg.schema_defaults()


def test_paper_config_is_valid_and_at_paper_scale():
    merged = cfg.load_config(REPO / "config" / "paper.yaml")
    assert merged["learn"]["unet"]["base_channels"] == 128
    assert set(merged["data"]["datasets"]) == {"cifar10", "celeba"}


def test_config_readme_is_rendered_from_schema():
    from fpscore import config_docs

    text = (REPO / "config" / "README.md").read_text()
    section = text[text.index(config_docs.BEGIN) + len(config_docs.BEGIN):text.index(config_docs.END)]
    assert section.strip("\n") + "\n" == config_docs.render_markdown(), "run `make config-docs`"


@pytest.mark.parametrize(
    "bad, key, expected",
    [
        ({"scores": {"sigma": "five"}}, "scores.sigma", "not of type 'number'"),
        ({"scores": {"solver": "lu"}}, "scores.solver", "is not one of"),
        ({"data": {"resolutions": [0]}}, "data.resolutions.0", "less than the minimum"),
        ({"data": {"resolutions": [32.5]}}, "data.resolutions.0", "not of type 'integer'"),
        ({"data": {"datasets": ["mnist"]}}, "data.datasets.0", "is not one of"),
        ({"scores": {"rtol": 0}}, "scores.rtol", "less than or equal to the minimum"),
        ({"scores": {"rtol": 1.5}}, "scores.rtol", "greater than or equal to the maximum"),
        ({"learn": {"train": {"ema_decay": 1.0}}}, "learn.train.ema_decay", "greater than or equal to the maximum"),
        ({"scores": {"sigma": float("nan")}}, "scores.sigma", "not of type 'number'"),
        ({"learn": {"train": {"bogus": 1}}}, "learn.train", "'bogus' was unexpected"),
        ({"experiments": {"denoise": [{"dataset": "photos", "resolution": 32, "target_ssim": 1.5}]}},
         "experiments.denoise.0.target_ssim", "greater than the maximum"),
        ({"experiments": {"budget": [{"dataset": "photos"}]}}, "experiments.budget.0", "'resolution' is a required"),
    ],
)
def test_bad_values_are_named(bad, key, expected):
    with pytest.raises(ValueError) as err:
        cfg.validate(bad)
    assert f"{key}: " in str(err.value) and expected in str(err.value)


def _snakemake(*args, cwd=REPO):
    exe = Path(sys.executable).with_name("snakemake")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_snakemake_rejects_bad_config_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scores:\n  picard_max_iter: -3\n")
    result = _snakemake("-n", "all", "--configfile", str(bad))
    assert result.returncode != 0
    assert "scores.picard_max_iter" in result.stdout + result.stderr


@pytest.mark.parametrize("configfile", [None, "config/paper.yaml"])
def test_dag_builds_for_both_configs(configfile):
    args = ["-n", "all", "--quiet", "rules"] + (["--configfile", configfile] if configfile else [])
    result = _snakemake(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_is_clean():
    result = _snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_authors_preset_validates_and_plans():
    """config/authors.yaml (METHOD.md 8b) on top of the default: valid, and the workflow's DAG builds."""
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    authors = yaml.safe_load((REPO / "config" / "authors.yaml").read_text())
    merged = cfg.validate({**default, **{k: {**default.get(k, {}), **v} for k, v in authors.items()}})
    assert (merged["learn"]["parameterization"], merged["evaluate"]["ssim_mode"]) == ("raw", "minmax")
    assert merged["learn"]["train"]["batch_size"] % merged["scores"]["n_times"] == 0  # jittered: batch = k N
    result = subprocess.run([str(Path(sys.executable).with_name("snakemake")), "-n", "all", "--quiet", "rules",
                             "--configfile", "config/config.yaml", "config/authors.yaml"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train" in result.stdout + result.stderr
