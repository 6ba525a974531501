"""The config system: presets, YAML, --set overrides, validation, saving."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest
import yaml

from dgqa_ray.config import (
    SECTIONS,
    ConfigError,
    DataConfig,
    DemoConfig,
    ModelConfig,
    PipelineConfig,
    SelectionConfig,
    TrainConfig,
    add_config_arguments,
    apply_overrides,
    config_from_args,
    list_presets,
    load_config,
    save_config,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "dgqa_ray" / "configs"
RECIPES = sorted(CONFIG_DIR.glob("*.yaml"))


def test_presets_exist():
    assert {"demo", "paper"} <= set(list_presets())
    assert {p.stem for p in RECIPES} >= {"demo", "paper"}


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_loads_and_round_trips(path, tmp_path):
    # A stale recipe (renamed or removed key, bad value) fails here.
    cfg = load_config(path)
    assert load_config(path.stem) == cfg  # by preset name too
    saved = tmp_path / "resolved.yaml"
    save_config(cfg, saved)
    assert load_config(saved) == cfg


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


def test_paper_and_demo_presets():
    paper = load_config("paper")
    assert paper.model.backbone == "resnet50" and paper.data.crop_size == 224
    assert (paper.data.classifier_dataset, paper.data.source_dataset) == ("kadis700k", "kadid10k")
    assert paper.data.target_dataset == "livec" and paper.train.use_gpu
    assert paper.train.lr == 2e-5 and paper.train.epochs == 15
    demo = load_config("demo")
    assert demo.model.backbone == "resnet18" and demo.data.crop_size <= 128
    assert not demo.train.use_gpu and demo.train.cpus_per_worker == 0  # from the cluster
    assert {demo.data.classifier_dataset, demo.data.source_dataset, demo.data.target_dataset} == {
        "embedded"
    }


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
        (["data.target_options=[1, 2]"], r"data\.target_options: expected a mapping"),
        (["train.lr.x=1"], r"train\.lr is not a mapping"),
        (["model.num_classes=10"], r"model\.num_classes: invalid value 10; allowed: 25, 26"),
        (["model.amp=fp8"], r"model\.amp: invalid value 'fp8'; allowed: bf16, none"),
        (["train.optimizer=rmsprop"], r"train\.optimizer: .*allowed: adam, adamw, sgd"),
        (["train.lr=0"], r"train\.lr: invalid value 0.0; expected > 0"),
        (["train.lr=fast"], r"train\.lr: expected a number, got 'fast'"),
        (["train.epochs=2.5"], r"train\.epochs: expected an integer"),
        (["train.use_gpu=maybe"], r"train\.use_gpu: expected true/false"),
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
        (
            ["data.crop_size=224"],
            r"data\.crop_size: 224 does not fit in demo\.tile \(96, 128\); expected crop_size <= 96",
        ),
        (["demo.target_types=1,1"], r"demo\.target_types: .*distinct KADID ids"),
        (["demo.target_types=0,26"], r"demo\.target_types"),
        (["demo.target_types=[]"], r"demo\.target_types: invalid value \(\); expected one or more"),
        (["demo.max_types_per_image=9"], r"demo\.max_types_per_image: invalid value 9"),
        (["demo.tile=[96]"], r"demo\.tile: expected 2 values"),
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
        (["demo.tiles=1"], r"demo: unknown key 'tiles' \(did you mean 'tile'\?\)"),
        (["data.source_root=http://example.com/kadid"], r"data\.source_root: invalid value"),
        (["run_name=a/b"], r"run_name: invalid value 'a/b'"),
        (["storage=gs://bucket"], r"storage: invalid value 'gs://bucket'"),
        (["output_dir=s3://bucket/x"], r"output_dir: .*a local folder path"),
        (["redo=everything"], r"redo: invalid stage 'everything'; allowed: data, classifier"),
        (["train.lrr=1"], r"unknown key 'lrr' \(did you mean 'lr'\?\); known keys: optimizer, lr"),
        (["trian.lr=1"], r"unknown section 'trian'; known sections: data, model, train"),
        (["epochs=3"], r"unknown key 'epochs'"),
        (["train.epochs"], r"expected 'section.field=value'"),
        (["a.b.c=1"], r"expected 'section.field=value'"),
    ],
)
def test_bad_values_name_the_field(overrides, pattern):
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


def test_yaml_errors_name_the_file(tmp_path):
    bad_key = tmp_path / "bad.yaml"
    bad_key.write_text("train:\n  epochs: 3\n  lerning_rate: 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: train: unknown key 'lerning_rate'"):
        load_config(bad_key)
    bad_top = tmp_path / "top.yaml"
    bad_top.write_text("trainer:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'trainer' \(did you mean 'train'\?\)"):
        load_config(bad_top)
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_config(not_mapping)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="couldn't parse YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match=r"neither a YAML file nor a preset; presets: demo"):
        load_config("no_such_preset")
    with pytest.raises(ConfigError, match="no YAML file"):
        load_config(tmp_path / "missing.yaml")


def test_partial_yaml_takes_defaults(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("run_name: tiny\ntrain:\n  epochs: 1\nmodel:\n")
    cfg = load_config(path)
    assert cfg.run_name == "tiny" and cfg.train.epochs == 1
    assert cfg.model == ModelConfig()


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


def test_argparse_helpers():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(
        ["--config", "paper", "--set", "train.epochs=2", "--set", "run_name=x"]
    )
    cfg = config_from_args(args)
    assert cfg.model.backbone == "resnet50" and cfg.train.epochs == 2 and cfg.run_name == "x"
    assert config_from_args(parser.parse_args([])).run_name == "demo"


def test_the_config_reference_in_the_docs_is_generated_from_the_code():
    from pathlib import Path

    from dgqa_ray.config_reference import update

    doc = Path(__file__).resolve().parents[1] / "docs" / "pipeline.md"
    assert update(doc, write=False), "docs/pipeline.md is stale: run jobs/config_reference.py"


def test_adapter_options_take_mappings_and_dotted_keys():
    cfg = load_config(
        "demo",
        [
            "data.target_dataset=custom",
            "data.target_options.score_column=mos",
            "data.target_options.higher_is_better=false",
            "data.source_options={}",
        ],
    )
    assert cfg.data.target_options == {"score_column": "mos", "higher_is_better": False}
    assert cfg.to_dict()["data"]["target_options"] == {
        "score_column": "mos",
        "higher_is_better": False,
    }
    flow = load_config(
        "demo",
        ["data.target_dataset=koniq10k", "data.target_options={resolution: 1024x768}"],
    )
    assert flow.data.target_options == {"resolution": "1024x768"}
    assert load_config("demo").data.target_options == {}


def test_learning_rates_per_task():
    cfg = load_config("demo", ["train.lr=3e-3", "train.classifier_lr=1e-3"])
    assert cfg.train.lr_for("regressor") == 3e-3 and cfg.train.lr_for("classifier") == 1e-3
    assert load_config("paper").train.lr_for("classifier") == 2e-5


def test_classifier_run_defaults_to_the_runs_own_and_can_name_another():
    assert load_config("demo").classifier_run_name == "demo-classifier"
    shared = load_config("demo", ["run_name=heldout", "classifier_run=demo-classifier"])
    assert shared.classifier_run_name == "demo-classifier"
    with pytest.raises(ConfigError, match="classifier_run: invalid value '../x'"):
        load_config("demo", ["classifier_run=../x"])


DEMO_FIELDS = (
    "tile",
    "target_types",
    "max_types_per_image",
    "classifier_refs",
    "classifier_types_per_ref",
    "source_refs",
    "dead_leaves",
    "source_dead_leaves",
    "target_images",
    "seed",
)
"""The demo section's fields, which earlier versions kept in ``data`` as ``embedded_<name>``."""


def test_a_config_with_the_old_data_embedded_keys_is_refused_with_their_new_names(tmp_path):
    # A run config saved by an earlier version: the demo's settings inside ``data``.
    values = load_config("demo").to_dict()
    demo = values.pop("demo")
    values["data"].update({f"embedded_{name}": demo[name] for name in DEMO_FIELDS})
    saved = tmp_path / "old_run.yaml"
    saved.write_text(yaml.safe_dump(values, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_config(saved)
    message = str(info.value)
    assert message.startswith(f"{saved}: data.embedded_tile: moved to demo.tile; "), message
    for name in DEMO_FIELDS:
        assert f"data.embedded_{name}: moved to demo.{name}" in message
    assert "unknown key" not in message
    # Doing what the message says loads the same config as the preset.
    moved = dict(
        part.split(": moved to ") for part in message.split(f"{saved}: ", 1)[1].split("; ")
    )
    fixed = {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
    fixed["demo"] = {}
    for old, new in moved.items():
        old_key = old.removeprefix("data.")
        new_key = new.split(" ")[0].removeprefix("demo.")
        fixed["demo"][new_key] = fixed["data"].pop(old_key)
    saved.write_text(yaml.safe_dump(fixed, sort_keys=False))
    assert load_config(saved) == load_config("demo")


@pytest.mark.parametrize("name", DEMO_FIELDS)
def test_an_old_data_embedded_key_is_refused_from_set_and_from_a_mapping(name):
    with pytest.raises(ConfigError, match=rf"^--set data\.embedded_{name}: moved to demo\.{name} "):
        load_config("demo", [f"data.embedded_{name}=1"])
    with pytest.raises(ConfigError, match=rf"^data\.embedded_{name}: moved to demo\.{name} "):
        PipelineConfig.from_dict({"data": {f"embedded_{name}": 1}})


def test_the_crop_must_fit_the_demo_tile_only_where_a_role_is_embedded():
    assert load_config("paper", ["demo.tile=32,32"]).data.crop_size == 224  # no embedded role
    with pytest.raises(ConfigError, match=r"data\.crop_size: 64 does not fit in demo\.tile"):
        load_config(
            "paper", ["data.crop_size=64", "data.target_dataset=embedded", "demo.tile=48,48"]
        )
    assert load_config("demo", ["demo.tile=64,64"]).demo.tile == (64, 64)
