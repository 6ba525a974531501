"""``PipelineConfig`` (``dgqa_ray/config/pipeline_config.py``): the top-level fields, the
checks across sections, and the plain dicts saved to YAML and logged to MLflow."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from dgqa_ray.config import SECTIONS, ConfigError, load_config


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (
            ["data.crop_size=224"],
            r"data\.crop_size: 224 does not fit in demo\.tile \(96, 128\); expected crop_size <= 96",
        ),
        (["run_name=a/b"], r"run_name: invalid value 'a/b'"),
        (["output_dir=s3://bucket/x"], r"output_dir: .*a local folder path"),
        (["redo=everything"], r"redo: invalid stage 'everything'; allowed: data, classifier"),
        (["search.splits=3"], r"search\.splits: 3 exceeds eval\.n_splits 2"),
        (["selection.k=26"], r"selection\.k: 26 exceeds model\.num_classes 25"),
    ],
)
def test_bad_values_name_the_field(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("demo", overrides)


def test_the_crop_must_fit_the_demo_tile_only_where_a_role_is_embedded():
    assert load_config("paper", ["demo.tile=32,32"]).data.crop_size == 224  # no embedded role
    with pytest.raises(ConfigError, match=r"data\.crop_size: 64 does not fit in demo\.tile"):
        load_config(
            "paper", ["data.crop_size=64", "data.target_dataset=embedded", "demo.tile=48,48"]
        )
    assert load_config("demo", ["demo.tile=64,64"]).demo.tile == (64, 64)


def test_to_dict_and_flat_dict():
    cfg = load_config("demo")
    nested = cfg.to_dict()
    assert set(nested) == {"run_name", "storage", "output_dir", "classifier_run", "redo", *SECTIONS}
    assert nested["demo"]["target_types"] == [1, 3, 10, 17, 18, 25]  # lists, not tuples
    yaml.safe_dump(nested)  # plain types only
    flat = cfg.to_flat_dict()
    assert flat["train.lr"] == cfg.train.lr and flat["run_name"] == "demo"
    n_fields = sum(len(dataclasses.fields(cls)) for cls in SECTIONS.values())
    assert len(flat) == n_fields + 5
    assert not any(word in key for key in flat for word in ("password", "secret", "token"))
    assert flat["demo.tile"] == [96, 128] and not any(k.startswith("data.embedded") for k in flat)


def test_classifier_run_defaults_to_the_runs_own_and_can_name_another():
    assert load_config("demo").classifier_run_name == "demo-classifier"
    shared = load_config("demo", ["run_name=heldout", "classifier_run=demo-classifier"])
    assert shared.classifier_run_name == "demo-classifier"
    with pytest.raises(ConfigError, match="classifier_run: invalid value '../x'"):
        load_config("demo", ["classifier_run=../x"])
