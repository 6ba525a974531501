"""Loading a config: presets, YAML files, ``--set`` overrides; and saving the resolved one.

cfg = load_config("demo", ["train.epochs=3", "selection.rule=topk_vote"])
cfg = load_config("my_run.yaml")
save_config(cfg, "dgqa_output/demo/config.yaml")        # the resolved config, as YAML
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .checks import ConfigError, known_key
from .pipeline_config import SECTIONS, PipelineConfig

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs"
"""The shipped presets (``demo.yaml``, ``paper.yaml``): package data, so every install has them."""


def preset_dirs() -> list[Path]:
    """Folders searched for presets: the package's own ``dgqa_ray/configs``."""
    return [PRESET_DIR]


def list_presets() -> list[str]:
    """Names of the presets found (``demo``, ``paper``, ...)."""
    names = {p.stem for d in preset_dirs() if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(names)


def _resolve_source(source: str | Path) -> Path:
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.is_file() or "/" in str(source):
        if not path.is_file():
            raise ConfigError(f"config: no YAML file at {str(source)!r}")
        return path
    for folder in preset_dirs():
        candidate = folder / f"{source}.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"config: {str(source)!r} is neither a YAML file nor a preset; presets: "
        f"{', '.join(list_presets()) or '(none found)'} (searched "
        f"{', '.join(str(d) for d in preset_dirs())})"
    )


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file; ConfigError naming the file otherwise."""
    try:
        values = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config: couldn't parse YAML in {str(path)!r}: {e}") from e
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"config: expected a mapping of sections in {str(path)!r}, got {type(values).__name__}"
        )
    return values


def load_config(source: str | Path | None = None, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Load a config and apply ``--set`` overrides; everything is validated before returning.

    Args:
        source: a YAML file path, or a preset name (``demo``, ``paper``) looked up in
            ``dgqa_ray/configs/``. None: the dataclass defaults (the paper's settings).
        overrides: ``section.field=value`` strings (``train.epochs=3``, ``run_name=try2``,
            ``selection.tau=null``, ``demo.target_types=1,3,9``), applied in order.

    Raises:
        ConfigError: unknown preset, file, section or key; a value of the wrong type or outside
            the allowed values. The message names the field.
    """
    values: dict[str, Any] = {}
    where = "config"
    if source is not None:
        path = _resolve_source(source)
        values = read_yaml(path)
        where = str(path)
        try:  # the file alone first: its own errors name the file ...
            PipelineConfig.from_dict(values, where)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
    try:  # ... and what only the overrides break is said to come from --set
        return PipelineConfig.from_dict(_apply_override_strings(values, overrides), where)
    except ConfigError as e:
        if not overrides or str(e).startswith("--set"):
            raise
        raise ConfigError(f"--set: {e}") from None


def apply_overrides(cfg: PipelineConfig, overrides: Sequence[str]) -> PipelineConfig:
    """A copy of ``cfg`` with ``section.field=value`` overrides applied and validated."""
    return PipelineConfig.from_dict(_apply_override_strings(cfg.to_dict(), overrides))


def _apply_override_strings(values: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    if isinstance(overrides, str):
        raise ConfigError(f"overrides: expected a list of 'section.field=value', got {overrides!r}")
    values = {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set: expected 'section.field=value', got {item!r}")
        parts = key.split(".")
        if len(parts) == 1:
            known_key(parts[0], PipelineConfig, "--set")
            values[parts[0]] = raw.strip()
        elif len(parts) == 2:
            section, name = parts
            if section not in SECTIONS:
                raise ConfigError(
                    f"--set {item!r}: unknown section {section!r}; known sections: "
                    f"{', '.join(SECTIONS)}"
                )
            known_key(name, SECTIONS[section], f"--set {section}")
            sub = values.get(section)
            sub = dict(sub) if isinstance(sub, dict) else {}
            sub[name] = raw.strip()
            values[section] = sub
        elif len(parts) == 3 and parts[0] in SECTIONS:
            # section.mapping_field.key=value, for the mapping fields (data.target_options.*)
            section, name, key_name = parts
            known_key(name, SECTIONS[section], f"--set {section}")
            hints = typing.get_type_hints(SECTIONS[section])
            if typing.get_origin(hints[name]) is not dict:
                raise ConfigError(
                    f"--set {item!r}: {section}.{name} is not a mapping; expected "
                    f"'{section}.{name}=value'"
                )
            sub = values.get(section)
            sub = dict(sub) if isinstance(sub, dict) else {}
            mapping = sub.get(name)
            mapping = dict(mapping) if isinstance(mapping, dict) else {}
            try:
                mapping[key_name] = yaml.safe_load(raw.strip()) if raw.strip() else None
            except yaml.YAMLError:
                mapping[key_name] = raw.strip()
            sub[name] = mapping
            values[section] = sub
        else:
            raise ConfigError(f"--set: expected 'section.field=value', got {item!r}")
    return values


def save_config(cfg: PipelineConfig, path: str | Path) -> str:
    """Write the resolved config as YAML to a local path or an ``s3://`` URI; returns it."""
    text = "# Resolved dgqa_ray config (defaults filled in, overrides applied).\n" + yaml.safe_dump(
        cfg.to_dict(), sort_keys=False
    )
    target = str(path)
    from dgqa_ray import storage  # lazy: loading a config reads no object store

    storage.write_text_atomic(target, text)
    return target
