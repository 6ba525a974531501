"""Coercion and the shared checks (``dgqa_ray/config/checks.py``): strings from ``--set`` and
YAML become the field's type, and a value of the wrong type or a URI with a secret is refused
naming the field."""

from __future__ import annotations

import pytest

from dgqa_ray.config import (
    ConfigError,
    DataConfig,
    DemoConfig,
    PipelineConfig,
    TrainConfig,
    apply_overrides,
    load_config,
)
from dgqa_ray.config.checks import known_key


def test_overrides_coerce_types():
    cfg = load_config(
        "demo",
        [
            "train.epochs=3",
            "train.lr=2e-5",  # YAML 1.1 would read this as a string
            "train.use_gpu=yes",
            "selection.tau=0.05",
            "selection.share_decimals=null",
            "demo.target_types=1, 3,9",
            "demo.tile=[128, 160]",
            "run_name=try-2",
            "redo=classifier,selection",
        ],
    )
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.train.lr == 2e-5 and cfg.train.use_gpu is True
    assert cfg.selection.tau == 0.05 and cfg.selection.share_decimals is None
    assert cfg.demo.target_types == (1, 3, 9)
    assert cfg.demo.tile == (128, 160)
    assert cfg.run_name == "try-2" and cfg.redo == ("classifier", "selection")
    assert cfg.redo_stage("selection") and not cfg.redo_stage("data")
    # Later overrides win; apply_overrides works on a built config.
    assert apply_overrides(cfg, ["train.epochs=1", "train.epochs=2"]).train.epochs == 2


def test_direct_construction_is_checked_too():
    assert TrainConfig(lr="1e-4").lr == 1e-4  # type: ignore[arg-type]
    assert DemoConfig(target_types=[2, 5]).target_types == (2, 5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"train\.batch_size"):
        TrainConfig(batch_size=0)
    cfg = PipelineConfig.from_dict({"train": {"epochs": 2}, "model": {"backbone": "resnet18"}})
    assert cfg.train.epochs == 2 and cfg.model.backbone == "resnet18" and cfg.train.lr == 2e-5


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["data.target_options=[1, 2]"], r"data\.target_options: expected a mapping"),
        (["train.lr=fast"], r"train\.lr: expected a number, got 'fast'"),
        (["train.epochs=2.5"], r"train\.epochs: expected an integer"),
        (["train.use_gpu=maybe"], r"train\.use_gpu: expected true/false"),
        (["demo.tile=[96]"], r"demo\.tile: expected 2 values"),
        (["data.source_root=http://example.com/kadid"], r"data\.source_root: invalid value"),
        (["storage=gs://bucket"], r"storage: invalid value 'gs://bucket'"),
    ],
)
def test_values_of_the_wrong_type_or_form_name_the_field(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("demo", overrides)


def test_credentials_are_refused_and_never_echoed():
    for override in (
        "storage=s3://AKIAEXAMPLE:s3cr3t@bucket/prefix",
        "tracking.tracking_uri=postgresql://mlflow:hunter2@db:5432/mlflow",
        "tracking.tracking_uri=http://mlflow:5000/?token=abc123",
    ):
        with pytest.raises(ConfigError, match="carries credentials") as info:
            load_config("demo", [override])
        for secret in ("s3cr3t", "hunter2", "abc123"):
            assert secret not in str(info.value)
    # A user name alone is not a secret (e.g. a database role).
    load_config("demo", ["tracking.tracking_uri=postgresql://mlflow@db:5432/mlflow"])


def test_known_key_suggests_a_close_name_and_gives_a_moved_one_its_new_name():
    known_key("crop_size", DataConfig, "data")  # a field: nothing to say
    with pytest.raises(ConfigError, match=r"^data: unknown key 'crop_sise' \(did you mean"):
        known_key("crop_sise", DataConfig, "data")
    with pytest.raises(ConfigError, match=r"^data\.embedded_seed: moved to demo\.seed "):
        known_key("embedded_seed", DataConfig, "data")
