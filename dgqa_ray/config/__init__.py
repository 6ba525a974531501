"""One config system for every stage: typed, frozen dataclasses loaded from YAML.

Defaults follow the paper (ResNet-50, 224 crops, Adam lr 2e-5, weight decay 5e-4, batch 32,
15 epochs, tau = 1/25, 5 splits); the embedded demo is the named preset ``demo``, not a set of
``if demo:`` branches. Usage::

    from dgqa_ray.config import load_config, save_config
    cfg = load_config("demo", ["train.epochs=3", "selection.rule=topk_vote"])
    cfg = load_config("paper", ["data.target_dataset=koniq10k"])
    save_config(cfg, "dgqa_output/demo/config.yaml")        # the resolved config, as YAML

From a job: ``python jobs/full_pipeline.py --config paper --set train.epochs=3``.

Every value is checked when the dataclass is built (``__post_init__``): a bad value raises
``ConfigError`` naming the field (``train.lr``), the value found and the values allowed, before
any compute starts. Strings from ``--set`` are coerced to the field's type there too, so a YAML
file, an override and a direct ``TrainConfig(lr="2e-5")`` go through the same checks.

There are no credential fields, and URIs carrying credentials (``s3://key:secret@bucket``,
``postgresql://user:password@host/db``) are refused: secrets come from the environment (the AWS
chain for S3, ``MLFLOW_TRACKING_*`` for MLflow) so that a saved config or an MLflow param never
holds one.

The package, one concept per module (each imports only those above it)::

    choices.py          the values fields may take (DATASETS, BACKBONES, STAGES, ...)
    checks.py           ConfigError; coercion to the field types and the shared checks
    sections.py         the sections: DataConfig, DemoConfig, ModelConfig, TrainConfig, ...
    pipeline_config.py  PipelineConfig (a whole run; the checks across sections), SECTIONS
    loading.py          presets, load_config, --set overrides, save_config
    cli.py              a job's --config/--set/--base-dir/--verbose: config_from_args
"""

from __future__ import annotations

from .checks import ConfigError
from .choices import (
    AMP_MODES,
    BACKBONES,
    CLASSIFIER_VIEWS,
    CPU_BF16,
    DATASETS,
    LR_SCHEDULES,
    NUM_KADID_TYPES,
    OPTIMIZERS,
    PLACEMENT_STRATEGIES,
    REGRESSOR_INITS,
    SELECTION_RULES,
    STAGES,
    TRAINABLE,
)
from .cli import (
    RAY_JOB_ENV,
    TRACKING_URI_ENV,
    add_config_arguments,
    add_verbose_argument,
    config_from_args,
    default_base_dir,
    resolve_relative_paths,
    running_as_ray_job,
    with_search_overrides,
)
from .loading import (
    PRESET_DIR,
    apply_overrides,
    list_presets,
    load_config,
    preset_dirs,
    read_yaml,
    save_config,
)
from .pipeline_config import SECTIONS, PipelineConfig
from .sections import (
    DataConfig,
    DemoConfig,
    EvalConfig,
    ModelConfig,
    SearchConfig,
    SelectionConfig,
    TrackingConfig,
    TrainConfig,
)

__all__ = [
    "AMP_MODES",
    "BACKBONES",
    "CLASSIFIER_VIEWS",
    "CPU_BF16",
    "DATASETS",
    "LR_SCHEDULES",
    "NUM_KADID_TYPES",
    "OPTIMIZERS",
    "PLACEMENT_STRATEGIES",
    "PRESET_DIR",
    "RAY_JOB_ENV",
    "REGRESSOR_INITS",
    "SECTIONS",
    "SELECTION_RULES",
    "STAGES",
    "TRACKING_URI_ENV",
    "TRAINABLE",
    "ConfigError",
    "DataConfig",
    "DemoConfig",
    "EvalConfig",
    "ModelConfig",
    "PipelineConfig",
    "SearchConfig",
    "SelectionConfig",
    "TrackingConfig",
    "TrainConfig",
    "add_config_arguments",
    "add_verbose_argument",
    "apply_overrides",
    "config_from_args",
    "default_base_dir",
    "list_presets",
    "load_config",
    "preset_dirs",
    "read_yaml",
    "resolve_relative_paths",
    "running_as_ray_job",
    "save_config",
    "with_search_overrides",
]
