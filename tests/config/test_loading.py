"""Loading (``dgqa_ray/config/loading.py``): presets, YAML files, ``--set`` overrides, saving,
and the keys of earlier versions refused with their new names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dgqa_ray.config import (
    PRESET_DIR,
    ConfigError,
    ModelConfig,
    PipelineConfig,
    list_presets,
    load_config,
    save_config,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "dgqa_ray" / "configs"
RECIPES = sorted(CONFIG_DIR.glob("*.yaml"))


def test_presets_exist():
    assert {"demo", "paper"} <= set(list_presets())
    assert {p.stem for p in RECIPES} >= {"demo", "paper"}
    assert PRESET_DIR == CONFIG_DIR  # the package data folder, not one inside dgqa_ray/config/


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_loads_and_round_trips(path, tmp_path):
    # A stale recipe (renamed or removed key, bad value) fails here.
    cfg = load_config(path)
    assert load_config(path.stem) == cfg  # by preset name too
    saved = tmp_path / "resolved.yaml"
    save_config(cfg, saved)
    assert load_config(saved) == cfg


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
    assert demo.demo.source_refs == 24 and demo.demo.dead_leaves == 64


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["train.lr.x=1"], r"train\.lr is not a mapping"),
        (["demo.tiles=1"], r"demo: unknown key 'tiles' \(did you mean 'tile'\?\)"),
        (["train.lrr=1"], r"unknown key 'lrr' \(did you mean 'lr'\?\); known keys: optimizer, lr"),
        (["trian.lr=1"], r"unknown section 'trian'; known sections: data, model, train"),
        (["epochs=3"], r"unknown key 'epochs'"),
        (["train.epochs"], r"expected 'section.field=value'"),
        (["a.b.c=1"], r"expected 'section.field=value'"),
    ],
)
def test_bad_overrides_name_the_key(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("demo", overrides)


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
