"""Where each role's data comes from (the embedded default, or raw datasets on disk or S3), the
checks a run makes before any compute, and ingesting them into shards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dgqa_ray import storage
from dgqa_ray.config import PipelineConfig

EMBEDDED = "embedded"


ROLES = ("classifier", "source", "target")


@dataclass
class RoleData:
    """Where one role's dataset comes from and where it is ingested."""

    role: str
    adapter: str
    root: str
    options: dict[str, Any]
    storage_uri: str  # the ingested dataset lives at <storage_uri>/<dataset>
    dataset: str = ""  # the ingested dataset's name (the adapter's name)


def resolve_data(cfg: PipelineConfig, run_dir: Path):
    """Each role's adapter and root; the embedded default is synthesized first (reused)."""
    roles: dict[str, RoleData] = {}
    target_types = None
    embedded = [r for r in ROLES if getattr(cfg.data, f"{r}_dataset") == EMBEDDED]
    if embedded:
        from dgqa_ray.demo.pools import build_embedded_pools

        pools = build_embedded_pools(
            cfg, Path(cfg.output_dir) / "embedded", force=cfg.redo_stage("data")
        )
        target_types = list(pools.target_types)
        for role in embedded:
            pool = getattr(pools, role)
            roles[role] = RoleData(
                role,
                pool.adapter,
                pool.root,
                dict(pool.options),
                storage.join(cfg.storage, "embedded", role),
            )
    for role in ROLES:
        if role not in roles:
            name, root, options = _raw_role(cfg, role)
            roles[role] = RoleData(role, name, root, options, cfg.storage)
    return roles, target_types


def _raw_role(cfg: PipelineConfig, role: str) -> tuple[str, str, dict[str, Any]]:
    """A configured (not embedded) role's adapter name, root and adapter options."""
    name = getattr(cfg.data, f"{role}_dataset")
    root = cfg.data.root_for(role, cfg.storage)
    options: dict[str, Any] = dict(getattr(cfg.data, f"{role}_options"))
    if role == "target" and cfg.data.target_subset and name == "pipal":
        options["subtypes"] = [cfg.data.target_subset]
    return name, root, options


def _read_index(cfg: PipelineConfig, role: str) -> pd.DataFrame:
    """A configured role's index, read as its adapter reads it (``DatasetError`` naming the
    role, the root and what was expected there)."""
    from dgqa_ray.data.adapters import open_adapter
    from dgqa_ray.data.errors import DatasetError

    name, root, options = _raw_role(cfg, role)
    try:
        return open_adapter(name, root, **options).index()
    except DatasetError as e:
        raise DatasetError(f"data.{role}_root ({name} at {root}): {e}") from None
    except (OSError, ValueError) as e:
        raise DatasetError(
            f"data.{role}_root ({name} at {root}): cannot be read as a {name} dataset: {e}"
        ) from None


def check_data_roots(cfg: PipelineConfig, *, scores_needed_by: str = "") -> bool:
    """Every role's raw dataset checked before anything starts: its root must hold the layout
    its adapter expects and its index must parse (``DatasetError`` naming the role, the root
    and what was expected there). Seconds, instead of minutes of ingesting the other roles
    first; the embedded default is built by the pipeline and needs no check.

    Returns whether the target has scores (``target_has_scores``). ``scores_needed_by`` names
    a job that cannot run without them (a search ranking by target SRCC): an unlabelled target
    is then refused here, before any compute."""
    labelled = True
    for role in ROLES:
        if getattr(cfg.data, f"{role}_dataset") == EMBEDDED:
            continue
        index = _read_index(cfg, role)
        if role == "target":
            labelled = bool(index["score"].notna().any())
    if scores_needed_by and not labelled:
        from dgqa_ray.data.errors import DatasetError

        raise DatasetError(
            _unlabelled_target(cfg) + f": {scores_needed_by} ranks by target "
            "SRCC and needs them (jobs/full_pipeline.py runs without)"
        )
    return labelled


def target_has_scores(cfg: PipelineConfig) -> bool:
    """Whether the target's index holds scores, so that SRCC/PLCC can be measured on it: the
    embedded default's proxies do; a ``custom`` table without
    ``data.target_options.score_column`` does not. Reads the target's index only."""
    if cfg.data.target_dataset == EMBEDDED:
        return True
    return bool(_read_index(cfg, "target")["score"].notna().any())


def _unlabelled_target(cfg: PipelineConfig) -> str:
    name, root, _ = _raw_role(cfg, "target")
    hint = " (set data.target_options.score_column)" if name == "custom" else ""
    return f"data.target_root ({name} at {root}): the target has no scores{hint}"


def ingest_all(cfg: PipelineConfig, roles: dict[str, RoleData]) -> None:
    from dgqa_ray.data.adapters import open_adapter
    from dgqa_ray.data.ingest import ingest

    for role in ROLES:
        data = roles[role]
        adapter = open_adapter(data.adapter, data.root, **data.options)
        result = ingest(
            adapter,
            data.storage_uri,
            shard_size_mb=cfg.data.shard_mb,
            max_bad_fraction=cfg.data.max_bad_fraction,
            max_megapixels=cfg.data.max_image_megapixels,
            force=cfg.redo_stage("data"),
        )
        data.dataset = result.dataset  # ingest's own last line said where, and how many


def dataset_key(data: RoleData) -> str:
    """Names the exact ingested version of a role's dataset (``<storage>/<dataset>@<version>``):
    cached results computed on a dataset are reused only for this same version."""
    from dgqa_ray.data import shards

    manifest = shards.read_manifest(shards.dataset_uri(data.storage_uri, data.dataset))
    return f"{storage.join(data.storage_uri, data.dataset)}@{manifest.version}"
