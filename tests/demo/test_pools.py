"""The embedded default's three pools: plans, the target's content kept apart, layouts, reuse."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dgqa_ray.config import load_config
from dgqa_ray.demo.photos import content_id, embedded_references
from dgqa_ray.demo.pools import (
    IDENTITY_LEVELS,
    MANIFEST_FILE,
    POOL_PHOTOS,
    POOL_ROLES,
    TARGET_DATASET,
    build_embedded_pools,
    classifier_type_plan,
    pool_tiles,
    read_target_truth,
    target_plan,
)

# -- plans (no Ray) ---------------------------------------------------------------------------


def test_the_target_photos_are_in_no_training_pool_and_every_photo_is_used():
    training = set(POOL_PHOTOS["classifier"]) | set(POOL_PHOTOS["source"])
    assert not training & set(POOL_PHOTOS["target"])
    assert POOL_PHOTOS["classifier"] == POOL_PHOTOS["source"]  # three photos: shared
    tiles = embedded_references((96, 128))
    assert {t.content for t in tiles} == training | set(POOL_PHOTOS["target"])
    counts = {role: len(pool_tiles(tiles, role)) for role in POOL_ROLES}
    assert counts == {"classifier": 65, "source": 65, "target": 25}
    # A limited pool still takes tiles of every photo it owns (round-robin order).
    assert {t.content for t in pool_tiles(tiles, "source", 3)} == set(POOL_PHOTOS["source"])


def test_classifier_plan_gives_distinct_types_and_balanced_counts():
    names = [f"skimage_motorcycle_t{i:02d}" for i in range(45)]
    plan = classifier_type_plan(names, 5, seed=0)
    assert all(len(set(types)) == 5 for types in plan.values())
    counts = Counter(t for types in plan.values() for t in types)
    assert set(counts) == set(range(1, 26))
    assert max(counts.values()) - min(counts.values()) <= 1  # 225 slots over 25 types: 9 each
    assert classifier_type_plan(names, 5, seed=0) == plan
    assert classifier_type_plan(names, 5, seed=1) != plan
    with pytest.raises(ValueError, match="types_per_ref"):
        classifier_type_plan(names, 26, seed=0)


def test_target_plan_mixes_the_configured_types():
    names = [f"skimage_coffee_t{i:02d}" for i in range(5)]
    types = (1, 3, 10, 17, 18, 25)
    plan = target_plan(names, 60, types, max_types=2, seed=0)
    assert len(plan) == 60 and len({m.image_id for m in plan}) == 60
    assert {m.ref_id for m in plan} == set(names)
    for mix in plan:
        assert 1 <= len(mix.types) <= 2 and len(set(mix.types)) == len(mix.types)
        assert set(mix.types) <= set(types)
        assert all(1 <= lvl <= 5 for lvl in mix.levels)
        for t, lvl in zip(mix.types, mix.levels, strict=True):
            assert lvl not in IDENTITY_LEVELS.get(t, ())  # every recorded type changes pixels
    present = Counter(t for m in plan for t in m.types)
    assert set(present) == set(types) and min(present.values()) >= 10  # each first 10 times
    assert Counter(len(m.types) for m in plan).keys() == {1, 2}  # single types and mixtures
    assert target_plan(names, 60, types, 2, seed=0) == plan
    with pytest.raises(ValueError, match="max_types"):
        target_plan(names, 4, (1, 3), max_types=3, seed=0)


def test_out_dir_must_be_local(tmp_path):
    with pytest.raises(ValueError, match="local folder"):
        build_embedded_pools(load_config("demo"), "s3://bucket/pools")


# -- building (Ray) -----------------------------------------------------------------------------

_TINY = [
    "data.classifier_view=stored",
    "demo.dead_leaves=2",
    "demo.tile=48,64",
    "data.crop_size=32",
    "demo.classifier_refs=3",
    "demo.classifier_types_per_ref=2",
    "demo.source_refs=1",
    "demo.target_images=6",
    "demo.target_types=1,18,25",
    "demo.max_types_per_image=2",
]


@pytest.fixture(scope="module")
def tiny_pools(ray_local, tmp_path_factory):
    cfg = load_config("demo", _TINY)
    out = tmp_path_factory.mktemp("pools")
    return cfg, out, build_embedded_pools(cfg, out, progress=False)


@pytest.mark.slow
def test_pools_open_with_their_adapters_and_hold_what_the_config_asked(tiny_pools):
    _, out, pools = tiny_pools
    assert not pools.reused and pools.build_seconds > 0

    classifier = pools.classifier.open().index()
    assert pools.classifier.adapter == "kadis700k"
    # 3 photo tiles + 2 dead-leaves images, 2 types x 5 levels each, plus the 5 references
    assert len(classifier) == 5 * 2 * 5 + 5 and pools.classifier.images == 5 * 2 * 5
    assert (classifier["dist_type"] == 0).sum() == 5  # the pristine references, always
    assert sum(r.startswith("deadleaves_") for r in pools.classifier.references) == 2
    assert classifier["mos"].isna().all()  # unlabelled, as KADIS
    classifier = classifier[classifier["dist_type"] > 0]
    per_ref = classifier.groupby("ref_id")["dist_type"].apply(lambda s: sorted(set(s)))
    assert all(len(types) == 2 for types in per_ref)
    plan = pd.read_csv(out / "classifier" / "classifier_types.csv")
    for ref_im, types in zip(plan["ref_im"], plan["dist_types"], strict=True):
        assert per_ref[ref_im.removesuffix(".png")] == sorted(int(t) for t in types.split(";"))

    source = pools.source.open().index()
    assert pools.source.adapter == "kadid10k"
    assert len(source) == 125 and sorted(source["dist_type"].unique()) == list(range(1, 26))
    assert source["mos"].between(0, 1).all() and source["score"].between(0, 10).all()
    by_level = source.groupby("dist_level")["mos"].mean()
    assert by_level[5] < by_level[1]  # proxies fall with the level

    target = pools.target.open().index()
    assert pools.target.adapter == "custom" and set(target["dataset"]) == {TARGET_DATASET}
    assert len(target) == 6 and target["mos"].between(0, 1).all()
    assert target["dist_type"].isna().all()  # an "authentic" stand-in: no single KADID type

    # The target's photos are in no training pool.
    contents = {
        role: {content_id(r) for r in frame["ref_id"] if not r.startswith("deadleaves_")}
        for role, frame in (("classifier", classifier), ("source", source), ("target", target))
    }
    for role, found in contents.items():
        assert found <= set(POOL_PHOTOS[role])
    assert not (contents["classifier"] | contents["source"]) & contents["target"]

    truth = read_target_truth(pools)
    assert set(truth["image_id"]) == set(target["image_id"])
    present = sorted({t for types in truth["dist_types"] for t in types})
    assert list(pools.target_types) == present and set(present) <= {1, 18, 25}
    assert sum(pools.target_type_counts.values()) == sum(len(t) for t in truth["dist_types"])
    assert pools.recovery([1, 7]) == {
        "recovered": [1],
        "missed": sorted(set(present) - {1}),
        "extra": [7],
    }

    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["status"] == "complete" and manifest["settings"]["proxy"]["scales"] == 3
    pool_json = json.loads((out / "target" / "pool.json").read_text())
    assert "NOT subjective" in pool_json["scores"] and pool_json["score_column"] == "proxy_ms_ssim"


@pytest.mark.slow
def test_a_second_call_reuses_the_pools_and_new_settings_rebuild_them(tiny_pools):
    cfg, out, first = tiny_pools
    table = Path(first.source.root) / "dmos.csv"
    stamp = table.stat().st_mtime_ns
    again = build_embedded_pools(cfg, out, progress=False)
    assert again.reused and again.seconds < 5
    assert table.stat().st_mtime_ns == stamp
    assert again.target_types == first.target_types

    # The authors' 26 classes: the same files serve (the references are always indexed).
    cfg26 = load_config("demo", [*_TINY, "model.num_classes=26"])
    pools26 = build_embedded_pools(cfg26, out, progress=False)
    assert pools26.reused and pools26.classifier.options["include_references"] is True
    index = pools26.classifier.open().index()
    assert (index["dist_type"] == 0).sum() == 5

    # The on-the-fly view needs only the references: a rebuild writes no distorted image.
    fly = load_config("demo", [*_TINY, "data.classifier_view=on_the_fly"])
    refs_only = build_embedded_pools(fly, out, progress=False)
    assert not refs_only.reused and refs_only.classifier.images == 0
    assert (refs_only.classifier.open().index()["dist_type"] == 0).all()
    assert not (Path(refs_only.classifier.root) / "dist_imgs").exists()

    # Another seed changes the noise draws: the pools are rebuilt, not reused.
    before = pd.read_csv(table)["dmos"].to_numpy()
    reseeded = load_config("demo", [*_TINY, "demo.seed=7"])
    rebuilt = build_embedded_pools(reseeded, out, progress=False)
    assert not rebuilt.reused
    assert not np.allclose(pd.read_csv(table)["dmos"].to_numpy(), before)
    assert json.loads((out / MANIFEST_FILE).read_text())["settings"]["seed"] == 7
