"""The sections (``dgqa_ray/config/sections.py``): the paper's defaults, derived values, and
every field's own checks."""

from __future__ import annotations

import dataclasses

import pytest

from dgqa_ray.config import (
    ConfigError,
    DataConfig,
    DemoConfig,
    PipelineConfig,
    SelectionConfig,
    TrainConfig,
    load_config,
)


def test_defaults_are_the_papers():
    cfg = PipelineConfig()
    assert cfg.model.backbone == "resnet50" and cfg.model.num_classes == 25
    assert cfg.data.crop_size == 224 and cfg.data.eval_crops == 5
    t = cfg.train
    assert (t.optimizer, t.lr, t.weight_decay, t.batch_size, t.epochs) == (
        "adam",
        2e-5,
        5e-4,
        32,
        15,
    )
    assert cfg.selection.rule == "mean_prob" and cfg.selection.resolved_tau == pytest.approx(0.04)
    assert (cfg.selection.k, cfg.selection.share, cfg.selection.vote_denominator) == (4, 0.04, 3)
    assert (cfg.eval.n_splits, cfg.eval.train_fraction) == (5, 0.8)
    assert cfg.tracking.tracking_uri == "sqlite:///dgqa_output/mlflow.db"
    assert load_config(None) == cfg


def test_the_demo_sections_defaults():
    demo = DemoConfig()
    assert demo.tile == (96, 128) and demo.target_types == (1, 3, 10, 17, 18, 25)
    assert (demo.max_types_per_image, demo.classifier_refs, demo.classifier_types_per_ref) == (
        2,
        None,
        5,
    )
    assert (demo.source_refs, demo.dead_leaves, demo.source_dead_leaves) == (8, 0, 0)
    assert (demo.target_images, demo.seed) == (100, 0)
    assert PipelineConfig().demo == demo


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (
            ["model.backbone=resnet19"],
            r"model\.backbone: invalid value 'resnet19'; expected a torchvision classification "
            r"model name.*did you mean resnet18",
        ),
        (["data.classifier_view=live"], r"data\.classifier_view: invalid value 'live'"),
        (["model.regressor_init=imagenet"], r"model\.regressor_init: invalid value"),
        (["model.cpu_bf16=maybe"], r"model\.cpu_bf16: invalid value 'maybe'; allowed: off, on"),
        (["train.lr_schedule=step"], r"train\.lr_schedule: invalid value 'step'"),
        (["train.warmup_fraction=1"], r"train\.warmup_fraction: invalid value 1\.0; expected"),
        (["train.regressor_trainable=layer4"], r"train\.regressor_trainable: invalid value"),
        (["data.onthefly_samples_per_ref=0"], r"data\.onthefly_samples_per_ref: invalid value 0"),
        (
            ["data.target_dataset=custom", "data.target_options.score=mos"],
            r"data\.target_options: custom takes no option score; options it takes: path_column",
        ),
        (
            ["data.target_options.score_column=mos"],
            r"data\.target_options: the embedded default sets its adapters' options itself",
        ),
        (["model.num_classes=10"], r"model\.num_classes: invalid value 10; allowed: 25, 26"),
        (["model.amp=fp8"], r"model\.amp: invalid value 'fp8'; allowed: bf16, none"),
        (["train.optimizer=rmsprop"], r"train\.optimizer: .*allowed: adam, adamw, sgd"),
        (["train.lr=0"], r"train\.lr: invalid value 0.0; expected > 0"),
        (["train.batch_size=33", "train.num_workers=2"], r"train\.batch_size: 33 is not divisible"),
        (
            ["selection.rule=vote"],
            r"selection\.rule: invalid value 'vote'; allowed: mean_prob, topk_vote",
        ),
        (["selection.tau=1.5"], r"selection\.tau: invalid value 1.5; expected > 0.0 and < 1.0"),
        (["selection.k=30"], r"selection\.k"),
        (["eval.train_fraction=1"], r"eval\.train_fraction"),
        (
            ["data.target_dataset=imagenet"],
            r"data\.target_dataset: invalid value 'imagenet'; allowed: kadid10k",
        ),
        (["data.crop_size=16"], r"data\.crop_size: invalid value 16; expected >= 32"),
        (["demo.target_types=1,1"], r"demo\.target_types: .*distinct KADID ids"),
        (["demo.target_types=0,26"], r"demo\.target_types"),
        (["demo.target_types=[]"], r"demo\.target_types: invalid value \(\); expected one or more"),
        (["demo.max_types_per_image=9"], r"demo\.max_types_per_image: invalid value 9"),
        (
            ["demo.tile=16,128"],
            r"demo\.tile: invalid value \(16, 128\); expected \(height, width\)",
        ),
        (["demo.classifier_refs=0"], r"demo\.classifier_refs: invalid value 0; expected >= 1"),
        (["demo.classifier_types_per_ref=26"], r"demo\.classifier_types_per_ref: .*<= 25"),
        (["demo.source_refs=0"], r"demo\.source_refs: invalid value 0; expected >= 1"),
        (["demo.dead_leaves=-1"], r"demo\.dead_leaves: invalid value -1; expected >= 0"),
        (["demo.source_dead_leaves=-1"], r"demo\.source_dead_leaves: invalid value -1"),
        (["demo.target_images=0"], r"demo\.target_images: invalid value 0; expected >= 1"),
        (["demo.seed=-1"], r"demo\.seed: invalid value -1; expected >= 0"),
    ],
)
def test_bad_values_name_the_field(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("demo", overrides)


def test_derived_values():
    train = TrainConfig(epochs=7)
    assert train.epochs_for("classifier") == 7 and train.epochs_for("regressor") == 7
    assert TrainConfig(epochs=7, classifier_epochs=2).epochs_for("classifier") == 2
    assert SelectionConfig(tau=0.1).resolved_tau == 0.1
    data = DataConfig()
    assert data.root_for("source", "s3://b/p/") == "s3://b/p/raw/kadid10k"
    assert DataConfig(target_root="/data/livec").root_for("target", "x") == "/data/livec"
    with pytest.raises(ValueError, match="role"):
        data.root_for("validation", "x")


def test_frozen():
    cfg = PipelineConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 1.0  # type: ignore[misc]


def test_learning_rates_per_task():
    cfg = load_config("demo", ["train.lr=3e-3", "train.classifier_lr=1e-3"])
    assert cfg.train.lr_for("regressor") == 3e-3 and cfg.train.lr_for("classifier") == 1e-3
    assert load_config("paper").train.lr_for("classifier") == 2e-5
