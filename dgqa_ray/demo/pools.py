"""The embedded default's three datasets, built from tiles of the photos inside scikit-image.

    pools = build_embedded_pools(cfg, "dgqa_output/embedded")     # ~30 s the first time
    ingest(pools.classifier.open(), cfg.storage)                  # KADIS-style, unlabelled
    ingest(pools.source.open(), cfg.storage)                      # KADID-style, proxy labels
    ingest(pools.target.open(), cfg.storage)                      # mixtures, proxy labels
    pools.recovery(selected)     # {"recovered": [...], "missed": [...], "extra": [...]}

No dataset can be downloaded where the demo runs, so the pipeline's default makes its own
(docs/pipeline.md). The tiles of ``photos.embedded_references(cfg.demo.tile)`` are
split **by photo**: the target's photos are in no training pool, so whatever the classifier and
the regressors learn must transfer to content they never saw:

==============  ===============================  ==========================================
pool            content                          what is written (adapter)
==============  ===============================  ==========================================
classifier      motorcycle, astronaut, rocket    KADIS-700k layout (``kadis700k``): the
                + ``demo.dead_leaves``           references in ``ref_imgs/``; with
                procedural dead-leaves images    ``data.classifier_view: stored`` also every
                                                 tile x ``demo.classifier_types_per_ref``
                                                 types x 5 levels in ``dist_imgs/``
source          motorcycle, astronaut, rocket    KADID-10k layout (``kadid10k``): the first
                (+ ``demo.source_dead_leaves``)  ``demo.source_refs`` tiles x 25 types
                                                 x 5 levels; ``dmos`` holds the proxy
target          coffee, chelsea (cat)            ``custom`` table ``target.csv``: images carrying
                                                 1..``demo.max_types_per_image`` of
                                                 ``demo.target_types`` applied in sequence
==============  ===============================  ==========================================

The classifier and the source share their three photos (KADIS-700k and KADID-10k share kinds of
content too): the packages this project may read ship five natural colour photos, and two of
them are the target's. Content variety is what both models are short of (docs/pipeline.md,
ablation), so the classifier pool adds procedural dead-leaves references (``dead_leaves.py``),
whose colours come from the classifier photos' pixels. The source uses only
``demo.source_refs`` tiles (round-robin over its photos) because every source tile costs
125 images in each regressor training.

**Scores are proxies.** No one rated these images: the source's ``dmos`` column and the
target's ``proxy_ms_ssim`` column hold MS-SSIM against the pristine (stretched) tile
(``proxy_scores.py``, [0, 1], higher is better). Ingestion puts them in ``mos`` (min-max
normalised into ``score``), because that is the schema's column for the label; ``pool.json`` in
each pool and ``embedded_pools.json`` say what they are. The classifier pool has no scores (as
KADIS).

Classifier pool and KADIS-700k: with ``data.classifier_view: on_the_fly`` (the demo) the pool is
references only, as the KADIS-700k release is, and training distorts them afresh every epoch
(``pipelines.onthefly_training_view``). With ``stored``, the distorted images are written as the
published generator would: KADIS gives each of its 140,000 references one type, which with ~130
references would leave about five per class, so each tile gets several distinct types
(``demo.classifier_types_per_ref``) dealt from one seeded permutation of 1..25 so that every
type gets the same number of tiles (+-1); ``kadis700k_ref_imgs.csv`` names each reference's first
type and ``classifier_types.csv`` lists all of them.

Target pool: image j of the pool is tile ``j mod n_tiles``; its first type cycles through a
seeded shuffle of ``demo.target_types`` (so every type is present about equally often),
1..``demo.max_types_per_image`` types are drawn (uniformly), the others without repetition
from the rest of the list, each with a level drawn uniformly from 1..5 (mean shift and contrast
change skip their level 3, which is the identity), and they are applied in a random order, each
on the previous result (``distortions.apply``, which min-max stretches its output as the
reference generator does). ``target.csv`` records the true types and levels of every image
(``dist_types`` and ``dist_levels``, ``;``-separated, in the order applied), and
``EmbeddedPools.target_types`` the set present, so a report can say how many of them the domain
selection recovered. The target stands in for an authentic set: real photos mix distortions
that are not applied one after another to a pristine image, and their scores are subjective.

Known differences from the published datasets: tiles are 96 x 128 (KADID: 384 x 512); the
source has 24 references (KADID: 81) and the classifier ~130 (KADIS: 140,000); within the source
and the classifier pools, the 80/20 splits group by *tile* (the ``ref_id`` the adapters give), so
two tiles of one photo can fall on both sides of a split (no training pool shares a photo with
the target).

Reuse: the pools and their settings are recorded in ``<out_dir>/embedded_pools.json``, written
last. A call with the same settings finds it and returns at once; different settings (tile,
counts, seed, types, proxy version) rebuild the three pool folders. An interrupted build resumes
(synthesis skips the images already written). Only local folders are supported: build here and
ingest into ``s3://`` storage.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from dgqa_ray.config import NUM_KADID_TYPES, PipelineConfig
from dgqa_ray.data.synthesis import (
    KADID_INDEX,
    KADIS_INDEX,
    derive_seed,
    synthesize_kadid,
    synthesize_kadis,
)
from dgqa_ray.data.writers import LocalFolderWriter

from .dead_leaves import dead_leaves_references, is_dead_leaves_name, palette_from_photos
from .photos import ReferenceTile, embedded_photos, embedded_references
from .proxy_scores import PROXY_COLUMN, PROXY_SCALE, proxy_scores, proxy_spec

log = logging.getLogger(__name__)

POOL_ROLES = ("classifier", "source", "target")
TRAINING_PHOTOS = ("skimage_motorcycle", "skimage_astronaut", "skimage_rocket")
POOL_PHOTOS: dict[str, tuple[str, ...]] = {
    # The target gets the two everyday scenes, the closest to an authentic set; the classifier
    # and the source share the other three (five photos are all the packages ship).
    "classifier": TRAINING_PHOTOS,
    "source": TRAINING_PHOTOS,
    "target": ("skimage_coffee", "skimage_chelsea"),
}
"""Content ids (``photos.content_id``) of each pool's photos: the target's are in no other
pool."""

MANIFEST_FILE = "embedded_pools.json"
POOL_FILE = "pool.json"
TARGET_TABLE = "target.csv"
CLASSIFIER_TYPES_FILE = "classifier_types.csv"
TARGET_DATASET = "embedded_target"
"""``dataset`` name of the ingested target (the custom adapter's ``dataset_name``)."""
POOLS_FORMAT = 2
"""Bumped whenever what a build writes changes, so older pools are rebuilt, not reused."""
LEVELS = (1, 2, 3, 4, 5)
IDENTITY_LEVELS: dict[int, tuple[int, ...]] = {18: (3,), 25: (3,)}
"""Levels that leave the image as it is (mean shift 0, contrast change 0 in the reference
generator's table); the target never draws them, so every type it records is really there."""

_ADAPTERS = {"classifier": "kadis700k", "source": "kadid10k", "target": "custom"}


@dataclass(frozen=True)
class Pool:
    """One pool: where it is and how to open it with an adapter."""

    role: str  # classifier | source | target
    adapter: str  # open_adapter name
    root: str  # what open_adapter takes as root (a folder, or the target's table file)
    options: Mapping[str, Any]  # open_adapter keyword options
    contents: tuple[str, ...]  # content ids (photos) of its tiles
    references: tuple[str, ...]  # tile names
    images: int  # distorted images written (pristine tiles not counted)

    def open(self):
        """The adapter that reads this pool (``open_adapter(adapter, root, **options)``)."""
        from dgqa_ray.data.adapters import open_adapter

        return open_adapter(self.adapter, self.root, **dict(self.options))


@dataclass(frozen=True)
class EmbeddedPools:
    """The three pools of the embedded default, plus what the target really contains."""

    out_dir: str
    classifier: Pool
    source: Pool
    target: Pool
    target_types: tuple[int, ...]
    """KADID ids present in the target (sorted): what domain selection should recover."""
    target_type_counts: Mapping[int, int]
    """Target images carrying each type."""
    proxy: Mapping[str, Any]
    """How the proxy scores were computed (``proxy_scores.ProxySpec.to_dict``)."""
    proxy_summary: Mapping[str, Mapping[str, float]]
    """min / median / max of the proxies per labelled pool."""
    settings: Mapping[str, Any] = field(repr=False)
    seconds: float = 0.0
    """Wall time of this call (build, or only the check when reused)."""
    build_seconds: float = 0.0
    """Wall time of the build that made the pools (recorded in the manifest)."""
    reused: bool = False

    def pool(self, role: str) -> Pool:
        if role not in POOL_ROLES:
            raise ValueError(f"role: expected one of {', '.join(POOL_ROLES)}, got {role!r}")
        return getattr(self, role)

    def recovery(self, selected: Iterable[int]) -> dict[str, list[int]]:
        """How a selection compares with the target's true types: recovered / missed / extra."""
        from dgqa_ray.reports import type_overlap

        return type_overlap(selected, self.target_types)

    def summary(self) -> str:
        state = "reused" if self.reused else f"built in {self.build_seconds:.1f} s"
        lines = [f"embedded pools at {self.out_dir} ({state}); scores: {PROXY_SCALE}"]
        for role in POOL_ROLES:
            p = self.pool(role)
            procedural = sum(1 for r in p.references if is_dead_leaves_name(r))
            made = f"{p.images} distorted images" if p.images else "references only"
            lines.append(
                f"  {role:10s} {p.adapter:9s} {len(p.references) - procedural:3d} tiles of "
                f"{', '.join(p.contents)}"
                + (f" + {procedural} dead-leaves images" if procedural else "")
                + f" -> {made}"
            )
        lines.append(f"  target types: {list(self.target_types)}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Plans (pure functions: which tile gets what)
# --------------------------------------------------------------------------------------------


def pool_tiles(
    tiles: Sequence[ReferenceTile], role: str, limit: int | None = None
) -> list[ReferenceTile]:
    """The tiles of ``role``'s photos, in ``embedded_references`` order (round-robin over the
    photos), at most ``limit``."""
    chosen = [t for t in tiles if t.content in POOL_PHOTOS[role]]
    return chosen if limit is None else chosen[:limit]


def classifier_type_plan(
    names: Sequence[str], types_per_ref: int, seed: int
) -> dict[str, tuple[int, ...]]:
    """Distinct types for each classifier tile, dealt from one seeded permutation of 1..25:
    consecutive tiles take consecutive runs of it, so type counts differ by at most one."""
    if not 1 <= types_per_ref <= NUM_KADID_TYPES:
        raise ValueError(f"types_per_ref: expected 1..{NUM_KADID_TYPES}, got {types_per_ref!r}")
    perm = np.random.default_rng([seed, 1]).permutation(NUM_KADID_TYPES) + 1
    return {
        name: tuple(
            int(perm[(i * types_per_ref + s) % NUM_KADID_TYPES]) for s in range(types_per_ref)
        )
        for i, name in enumerate(names)
    }


@dataclass(frozen=True)
class Mixture:
    """One target image: a tile and the distortions applied to it, in order."""

    image_id: str
    ref_id: str  # the tile's name
    types: tuple[int, ...]  # KADID ids, in the order applied
    levels: tuple[int, ...]  # one per type


def _effective_levels(dist_type: int) -> list[int]:
    return [v for v in LEVELS if v not in IDENTITY_LEVELS.get(dist_type, ())]


def target_plan(
    names: Sequence[str],
    n_images: int,
    target_types: Sequence[int],
    max_types: int,
    seed: int,
) -> list[Mixture]:
    """The target's mixtures (see the module doc for the draws)."""
    if not names:
        raise ValueError("names: expected at least one target tile")
    types = [int(t) for t in target_types]
    if not 1 <= max_types <= len(types):
        raise ValueError(f"max_types: expected 1..{len(types)}, got {max_types!r}")
    rng = np.random.default_rng([seed, 2])
    first_order = [types[i] for i in rng.permutation(len(types))]
    plan = []
    for j in range(n_images):
        name = names[j % len(names)]
        first = first_order[j % len(types)]
        count = int(rng.integers(1, max_types + 1))
        rest = [t for t in types if t != first]
        chosen = [first] + [int(t) for t in rng.choice(rest, size=count - 1, replace=False)]
        order = [chosen[i] for i in rng.permutation(count)]
        levels = [int(rng.choice(_effective_levels(t))) for t in order]
        plan.append(Mixture(f"{name}_mix{j // len(names):02d}", name, tuple(order), tuple(levels)))
    return plan


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def _local_dir(out_dir: str | os.PathLike[str]) -> Path:
    text = os.fspath(out_dir)
    if "://" in text and not text.startswith("file://"):
        raise ValueError(
            f"out_dir: expected a local folder, got {text!r}; build the pools locally and "
            "ingest them into the object store (ingest(pool.open(), 's3://...'))"
        )
    return Path(text.removeprefix("file://")).expanduser().resolve()


def _settings(cfg: PipelineConfig, tiles: Mapping[str, list[ReferenceTile]]) -> dict[str, Any]:
    d = cfg.demo
    h, w = d.tile
    return {
        "format": POOLS_FORMAT,
        "tile": [h, w],
        "seed": d.seed,
        "photos": {role: list(POOL_PHOTOS[role]) for role in POOL_ROLES},
        "tiles": {role: [t.name for t in tiles[role]] for role in POOL_ROLES},
        "classifier_view": cfg.data.classifier_view,
        "classifier_types_per_ref": d.classifier_types_per_ref,
        "dead_leaves": {
            "classifier": d.dead_leaves,
            "source": d.source_dead_leaves,
        },
        "target_types": list(d.target_types),
        "max_types_per_image": d.max_types_per_image,
        "target_images": d.target_images,
        "proxy": proxy_spec(h, w).to_dict(),
    }


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # unreadable: treated as absent, the build starts over
    return found if isinstance(found, dict) else None


def _write_json(writer: LocalFolderWriter, relpath: str, value: Any) -> None:
    writer.write_text(relpath, json.dumps(value, indent=2, sort_keys=False) + "\n")


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))  # (H, W, 3) uint8


def _write_kadis_index(
    writer: LocalFolderWriter, tiles: Sequence[ReferenceTile], plan: Mapping[str, tuple[int, ...]]
) -> None:
    """The classifier pool's ``kadis700k_ref_imgs.csv``. ``dist_type_1`` holds each tile's first
    type; with stored images the kadis700k adapter reads the types from the file names."""
    writer.write_index(
        KADIS_INDEX,
        pd.DataFrame(
            {
                "ref_im": [f"{t.name}.png" for t in tiles],
                "dist_type_1": [plan[t.name][0] for t in tiles],
                "dist_type_2": pd.array([pd.NA] * len(tiles), dtype="Int64"),
            }
        ),
    )


def _build_classifier(
    folder: Path,
    tiles: list[ReferenceTile],
    plan: Mapping[str, tuple[int, ...]],
    seed: int,
    num_cpus: int | None,
    progress: bool,
    stored: bool,
) -> int:
    """KADIS layout. ``stored``: several types per tile, one ``synthesize_kadis`` run per type
    slot, all into the same folder (file names differ by type; pristine tiles are written
    once). Otherwise the references alone, as the KADIS-700k release ships them (the on-the-fly
    view distorts them while training)."""
    if not stored:
        writer = LocalFolderWriter(folder)
        for t in tiles:
            writer.write_image(f"ref_imgs/{t.name}.png", t.image, "png")
        _write_kadis_index(writer, tiles, plan)
        return 0
    slots = len(next(iter(plan.values())))
    with tempfile.TemporaryDirectory(prefix="dgqa-kadis-plan-") as tmp:
        for s in range(slots):
            table = Path(tmp) / f"slot_{s}.csv"
            pd.DataFrame(
                {
                    "ref_im": [t.name for t in tiles],
                    "dist_type_1": [plan[t.name][s] for t in tiles],
                    "dist_type_2": [""] * len(tiles),
                }
            ).to_csv(table, index=False)
            synthesize_kadis(
                tiles, folder, table=table, seed=seed, num_cpus=num_cpus, progress=progress
            )
    writer = LocalFolderWriter(folder)
    _write_kadis_index(writer, tiles, plan)
    writer.write_index(
        CLASSIFIER_TYPES_FILE,
        pd.DataFrame(
            {
                "ref_im": [f"{t.name}.png" for t in tiles],
                "dist_types": [";".join(str(v) for v in plan[t.name]) for t in tiles],
            }
        ),
    )
    return len(tiles) * slots * len(LEVELS)


def _build_source(
    folder: Path, tiles: list[ReferenceTile], seed: int, num_cpus: int | None, progress: bool
) -> np.ndarray:
    """KADID layout, every tile x 25 types x 5 levels, ``dmos`` = the MS-SSIM proxy."""
    result = synthesize_kadid(tiles, folder, seed=seed, num_cpus=num_cpus, progress=progress)
    index = pd.read_csv(result.index_path, dtype={"dist_img": str, "ref_img": str})
    pristine = {f"{t.name}.png": t.image for t in tiles}
    proxies = np.empty(len(index), dtype=np.float64)
    # One tile at a time: its 125 images against its pristine tile, in piq batches.
    for ref_img, rows in index.groupby("ref_img", sort=False).groups.items():
        positions = index.index.get_indexer(rows)
        images = [_read_png(folder / "images" / index["dist_img"].iat[i]) for i in positions]
        proxies[positions] = proxy_scores(np.stack(images), pristine[ref_img])
    index["dmos"] = np.round(proxies, 6)
    index["var"] = np.nan
    LocalFolderWriter(folder).write_index(KADID_INDEX, index)
    return proxies


def _build_target(
    folder: Path, tiles: list[ReferenceTile], plan: list[Mixture], seed: int
) -> np.ndarray:
    """The mixtures, their proxies and ``target.csv`` (written last)."""
    from dgqa_ray import distortions

    writer = LocalFolderWriter(folder)
    by_name = {t.name: t.image for t in tiles}
    images, refs = [], []
    for mix in plan:
        pixels = by_name[mix.ref_id]  # (H, W, 3) uint8
        for step, (dist_type, level) in enumerate(zip(mix.types, mix.levels, strict=True)):
            step_seed = derive_seed(seed, f"{mix.image_id}/{step}", dist_type, level)
            pixels = distortions.apply(pixels, dist_type, level, seed=step_seed)
        writer.write_image(f"images/{mix.image_id}.png", pixels, "png")
        images.append(pixels)
        refs.append(by_name[mix.ref_id])
    proxies = proxy_scores(np.stack(images), np.stack(refs))
    table = pd.DataFrame(
        {
            "path": [f"images/{m.image_id}.png" for m in plan],
            "image_id": [m.image_id for m in plan],
            "ref_id": [m.ref_id for m in plan],
            PROXY_COLUMN: np.round(proxies, 6),
            "dist_types": [";".join(str(t) for t in m.types) for m in plan],
            "dist_levels": [";".join(str(v) for v in m.levels) for m in plan],
            "n_types": [len(m.types) for m in plan],
        }
    )
    writer.write_index(TARGET_TABLE, table)
    return proxies


def _summary(values: np.ndarray) -> dict[str, float]:
    return {
        "min": round(float(np.min(values)), 6),
        "median": round(float(np.median(values)), 6),
        "max": round(float(np.max(values)), 6),
    }


def _pools_from_manifest(
    manifest: Mapping[str, Any], folder: Path, cfg: PipelineConfig, seconds: float, reused: bool
) -> EmbeddedPools:
    settings = manifest["settings"]
    counts = manifest["images"]
    tiles = settings["tiles"]
    pools = {}
    for role in POOL_ROLES:
        root = folder / role
        if role == "classifier":
            # The pristine references are always ingested: the on-the-fly view distorts them,
            # and they are class 0 of the authors' 26-class classifier (the stored view of a
            # 25-class classifier filters them out).
            options: dict[str, Any] = {"include_references": True}
        elif role == "source":
            options = {}
        else:
            root = root / TARGET_TABLE
            options = {
                "path_column": "path",
                "score_column": PROXY_COLUMN,
                "id_column": "image_id",
                "ref_column": "ref_id",
                "higher_is_better": True,
                "dataset_name": TARGET_DATASET,
            }
        pools[role] = Pool(
            role=role,
            adapter=_ADAPTERS[role],
            root=str(root),
            options=options,
            contents=tuple(settings["photos"][role]),
            references=tuple(tiles[role]),
            images=int(counts[role]),
        )
    return EmbeddedPools(
        out_dir=str(folder),
        target_types=tuple(int(t) for t in manifest["target_types"]),
        target_type_counts={int(k): int(v) for k, v in manifest["target_type_counts"].items()},
        proxy=settings["proxy"],
        proxy_summary=manifest["proxy_summary"],
        settings=settings,
        seconds=seconds,
        build_seconds=float(manifest["build_seconds"]),
        reused=reused,
        **pools,
    )


def _complete(manifest: Mapping[str, Any] | None, settings: Mapping[str, Any], folder: Path):
    if manifest is None or manifest.get("status") != "complete":
        return False
    if manifest.get("settings") != settings:
        return False
    needed = [folder / "classifier" / KADIS_INDEX, folder / "source" / KADID_INDEX]
    needed.append(folder / "target" / TARGET_TABLE)
    return all(p.is_file() for p in needed)


def build_embedded_pools(
    cfg: PipelineConfig,
    out_dir: str | os.PathLike[str],
    *,
    force: bool = False,
    num_cpus: int | None = None,
    progress: bool = True,
) -> EmbeddedPools:
    """Build (or reuse) the embedded default's classifier, source and target pools.

    Args:
        cfg: the pipeline config; ``cfg.demo`` sizes the pools and
            ``cfg.model.num_classes`` decides whether the classifier's adapter includes the
            pristine tiles (26 classes) or not (25).
        out_dir: a local folder; the pools go to ``classifier/``, ``source/`` and ``target/``
            under it, the manifest to ``embedded_pools.json``.
        force: rebuild even if finished pools with the same settings are there.
        num_cpus: Ray tasks running at once while synthesizing (default: every CPU).
        progress: synthesis progress lines on stderr.

    Returns:
        ``EmbeddedPools``: each pool's adapter name, root and options, and the target's types.

    Raises:
        ValueError: ``out_dir`` is not local, or a pool has no tile at this tile size.
    """
    started = time.monotonic()
    folder = _local_dir(out_dir)
    d = cfg.demo
    all_tiles = embedded_references(tuple(d.tile))
    limits = {
        "classifier": d.classifier_refs,
        "source": d.source_refs,
        "target": None,
    }
    tiles = {role: pool_tiles(all_tiles, role, limits[role]) for role in POOL_ROLES}
    if d.dead_leaves or d.source_dead_leaves:
        photos = embedded_photos()
        palette = palette_from_photos([photos[c] for c in TRAINING_PHOTOS], d.seed)
        tile = tuple(d.tile)
        tiles["classifier"] += dead_leaves_references(d.dead_leaves, tile, d.seed, palette)
        # Other indices than the classifier's: the source's procedural images are new content.
        tiles["source"] += dead_leaves_references(
            d.source_dead_leaves, tile, d.seed, palette, start=5000
        )
    for role in POOL_ROLES:
        if not tiles[role]:
            raise ValueError(
                f"demo.tile: {tuple(d.tile)} leaves no tile for the {role} pool (photos {', '.join(POOL_PHOTOS[role])}); expected a smaller tile"
            )
        limit = limits[role]
        if limit is not None and len(tiles[role]) < limit:
            log.info(
                f"embedded pools: demo.{role}_refs={limit} but the {role} photos give "
                f"only {len(tiles[role])} tiles of {tuple(d.tile)}; using all of them"
            )
    settings = _settings(cfg, tiles)
    writer = LocalFolderWriter(folder)
    found = _read_manifest(folder)
    if not force and _complete(found, settings, folder):
        assert found is not None
        pools = _pools_from_manifest(found, folder, cfg, time.monotonic() - started, True)
        log.info(f"embedded pools: reusing {folder} (same settings)")
        return pools

    if force or (found is not None and found.get("settings") != settings):
        reason = "forced" if force else "settings changed"
        log.info(f"embedded pools: rebuilding {folder} ({reason})")
        for role in POOL_ROLES:
            shutil.rmtree(folder / role, ignore_errors=True)
    elif any((folder / role).exists() for role in POOL_ROLES) and found is None:
        # Folders without any manifest: not ours, or from before the manifest existed; their
        # settings are unknown, so they are not trusted.
        for role in POOL_ROLES:
            shutil.rmtree(folder / role, ignore_errors=True)
    _write_json(writer, MANIFEST_FILE, {"status": "building", "settings": settings})

    seed = d.seed
    t0 = time.monotonic()
    cls_plan = classifier_type_plan(
        [t.name for t in tiles["classifier"]], d.classifier_types_per_ref, seed
    )
    n_cls = _build_classifier(
        folder / "classifier",
        tiles["classifier"],
        cls_plan,
        seed,
        num_cpus,
        progress,
        stored=cfg.data.classifier_view == "stored",
    )
    t_cls = time.monotonic() - t0

    t0 = time.monotonic()
    source_proxies = _build_source(folder / "source", tiles["source"], seed, num_cpus, progress)
    t_src = time.monotonic() - t0

    t0 = time.monotonic()
    mixtures = target_plan(
        [t.name for t in tiles["target"]],
        d.target_images,
        d.target_types,
        d.max_types_per_image,
        seed,
    )
    target_proxies = _build_target(folder / "target", tiles["target"], mixtures, seed)
    t_tgt = time.monotonic() - t0

    type_counts: dict[int, int] = {}
    for mix in mixtures:
        for t in set(mix.types):
            type_counts[t] = type_counts.get(t, 0) + 1
    build_seconds = time.monotonic() - started
    images = {"classifier": n_cls, "source": len(source_proxies), "target": len(mixtures)}
    proxy_summary = {"source": _summary(source_proxies), "target": _summary(target_proxies)}
    for role in POOL_ROLES:
        _write_json(
            LocalFolderWriter(folder / role),
            POOL_FILE,
            {
                "pool": role,
                "adapter": _ADAPTERS[role],
                "photos": list(POOL_PHOTOS[role]),
                "tiles": settings["tiles"][role],
                "distorted_images": images[role],
                "scores": "none (unlabelled, as KADIS-700k)"
                if role == "classifier"
                else f"{PROXY_SCALE}; NOT subjective scores",
                "score_column": {"classifier": None, "source": "dmos", "target": PROXY_COLUMN}[
                    role
                ],
                "proxy": settings["proxy"] if role != "classifier" else None,
            },
        )
    manifest = {
        "status": "complete",
        "settings": settings,
        "images": images,
        "target_types": sorted(type_counts),
        "target_type_counts": {str(k): v for k, v in sorted(type_counts.items())},
        "proxy_summary": proxy_summary,
        "build_seconds": round(build_seconds, 2),
        "stage_seconds": {
            "classifier": round(t_cls, 2),
            "source": round(t_src, 2),
            "target": round(t_tgt, 2),
        },
    }
    _write_json(writer, MANIFEST_FILE, manifest)
    pools = _pools_from_manifest(manifest, folder, cfg, time.monotonic() - started, False)
    log.info(pools.summary())
    return pools


def read_target_truth(pools: EmbeddedPools) -> pd.DataFrame:
    """The target's per-image truth: ``image_id, ref_id, proxy_ms_ssim, dist_types (tuple),
    dist_levels (tuple), n_types``."""
    table = pd.read_csv(pools.target.root, dtype={"image_id": str, "ref_id": str})
    for column in ("dist_types", "dist_levels"):
        table[column] = [tuple(int(v) for v in str(s).split(";")) for s in table[column]]
    return table.drop(columns=["path"])


__all__ = [
    "MANIFEST_FILE",
    "POOL_PHOTOS",
    "POOL_ROLES",
    "TARGET_DATASET",
    "EmbeddedPools",
    "Mixture",
    "Pool",
    "build_embedded_pools",
    "classifier_type_plan",
    "pool_tiles",
    "read_target_truth",
    "target_plan",
]
