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
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import yaml

from dgqa_ray.user_input import NAME_PATTERN, URI_SCHEMES, carries_credentials, credentials_message
from dgqa_ray.user_input import redact as redact_uri

NUM_KADID_TYPES = 25

DATASETS = (
    "kadid10k",
    "kadis700k",
    "livec",
    "koniq10k",
    "bid",
    "pipal",
    "spaq",
    "custom",
    "embedded",
)
"""Dataset names a data role may use (``embedded``: tiles of the packaged photos)."""

BACKBONES = ("resnet18", "resnet34", "resnet50")
"""The paper's family; any other torchvision classification model name works too
(``torchvision.models.list_models(module=torchvision.models)``: ``mobilenet_v3_small``,
``efficientnet_b0``, ``convnext_tiny``, ...)."""
CLASSIFIER_VIEWS = ("stored", "on_the_fly")
"""How the classifier sees KADIS-style data: the stored distorted images (the paper's
protocol) or references distorted afresh every epoch."""
REGRESSOR_INITS = ("pretrained", "classifier")
LR_SCHEDULES = ("constant", "cosine")
TRAINABLE = ("all", "head")
CPU_BF16 = ("off", "on", "auto")
OPTIMIZERS = ("adam", "adamw", "sgd")
AMP_MODES = ("bf16", "none")
SELECTION_RULES = ("mean_prob", "topk_vote")
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
"""Ray placement group strategies for the Train workers (``ScalingConfig.placement_strategy``)."""
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
"""Environment variable that, for the jobs, overrides the config's ``tracking.tracking_uri``."""
STAGES = ("data", "classifier", "selection", "regressors", "all")
"""Pipeline stages a rerun may be told to redo instead of reusing their outputs (``all``: every
stage)."""

_RUN_NAME = NAME_PATTERN
_URI_SCHEMES = URI_SCHEMES


class ConfigError(ValueError):
    """A config value (or key) that cannot be used; the message names the field."""


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    """Which datasets play which role, and how images are cropped and sharded."""

    _section: ClassVar[str] = "data"
    _moved: ClassVar[dict[str, str]] = {
        "embedded_tile": "demo.tile",
        "embedded_target_types": "demo.target_types",
        "embedded_max_types_per_image": "demo.max_types_per_image",
        "embedded_classifier_refs": "demo.classifier_refs",
        "embedded_classifier_types_per_ref": "demo.classifier_types_per_ref",
        "embedded_source_refs": "demo.source_refs",
        "embedded_dead_leaves": "demo.dead_leaves",
        "embedded_source_dead_leaves": "demo.source_dead_leaves",
        "embedded_target_images": "demo.target_images",
        "embedded_seed": "demo.seed",
    }
    """Keys of earlier versions and where they are now: a config (a saved run's YAML, a
    ``--set``) that still has one is refused with the new name."""

    classifier_dataset: str = "kadis700k"
    """Trains the domain classifier F_D. KADIS-700k: the 25 KADID types on 140k references
    (paper 3.3: more data, same types as the source)."""
    classifier_root: str | None = None
    """Where the raw dataset lies (path or ``s3://`` URI); None: ``<storage>/raw/<dataset>``."""
    source_dataset: str = "kadid10k"
    """Labelled source domains the regressor F_R trains on: KADID-10k (paper 4.1)."""
    source_root: str | None = None
    """Raw source dataset location; None: ``<storage>/raw/<dataset>``."""
    target_dataset: str = "livec"
    """Unlabelled-for-training target; its scores are used only for evaluation. LIVEC is the
    paper's first authentic target (Table 3)."""
    target_root: str | None = None
    """Raw target dataset location; None: ``<storage>/raw/<dataset>``."""
    classifier_options: dict[str, Any] = field(default_factory=dict)
    """Keyword options of the classifier dataset's adapter (docs/data.md), e.g.
    ``{include_distorted: false}`` for kadis700k; ``--set data.classifier_options.KEY=VALUE``."""
    source_options: dict[str, Any] = field(default_factory=dict)
    """Keyword options of the source dataset's adapter."""
    target_options: dict[str, Any] = field(default_factory=dict)
    """Keyword options of the target dataset's adapter, e.g. for ``custom``: ``path_column``,
    ``score_column`` (absent: an unlabelled target), ``id_column``, ``ref_column``,
    ``higher_is_better``; for ``koniq10k``: ``resolution``. Checked against the adapter before
    any compute; ``--set data.target_options.score_column=mos``."""
    target_subset: str | None = None
    """A subset of the target (e.g. a PIPAL sub-type, ``pipal-1``); None: the whole set."""
    crop_size: int = 224
    """Side of the square random crop for training and evaluation (paper 4.1: 224x224)."""
    eval_crops: int = 5
    """Random crops per image at test time, predictions averaged (paper 4.1: five)."""
    hflip: bool = True
    """Random horizontal flip while training (paper 4.1 and the authors' data_loader.py)."""
    classifier_view: str = "stored"
    """``stored``: the classifier trains on the stored distorted images of its dataset
    (KADIS-700k as generated, the paper's protocol). ``on_the_fly``: it reads only the dataset's
    pristine references and gives every sample of every epoch a fresh (type, level) drawn
    uniformly over 25 types x 5 levels, distorted by this project's engine inside Ray Data
    (``pipelines.onthefly_training_view``): any number of distorted samples, none stored."""
    onthefly_samples_per_ref: int = 5
    """on_the_fly: samples drawn from each training reference per epoch (KADIS-700k: 5 images
    per reference)."""
    onthefly_val_images: int = 2500
    """on_the_fly: size of the fixed, seeded validation set made from the held-out references
    (types dealt evenly, levels drawn uniformly); ``eval_crops`` crops each."""
    onthefly_on_gpu: bool = False
    """on_the_fly with ``train.use_gpu``: distort in a GPU actor pool (``distortions.apply_batch``,
    samples grouped by type and level) instead of CPU tasks."""
    shard_mb: int = 256
    """Target Parquet shard size in MB: hundreds of MB, since object stores and Ray Data are
    slow with many small objects (docs/design.md section 1)."""
    max_bad_fraction: float = 0.01
    """Share of corrupt or unreadable images tolerated (each counted, skipped and reported)
    before ingestion stops with an error."""
    max_image_megapixels: float = 64.0
    """Images with more pixels than this (millions) are skipped as bad before decoding: the
    paper's largest are SPAQ's 12 MP; Pillow alone would let a 144 MP image through."""

    def __post_init__(self) -> None:
        _normalise(self)
        for role in ("classifier", "source", "target"):
            name = f"{role}_dataset"
            _check_choice(self, name, DATASETS)
            _check_uri(self, f"{role}_root", allow_none=True)
            _check_adapter_options(self, role)
        _check_range(self, "crop_size", low=32)  # ResNets downsample 32x
        _check_range(self, "eval_crops", low=1)
        _check_choice(self, "classifier_view", CLASSIFIER_VIEWS)
        _check_range(self, "onthefly_samples_per_ref", low=1)
        _check_range(self, "onthefly_val_images", low=1)
        _check_range(self, "shard_mb", low=1)
        _check_range(self, "max_image_megapixels", low=0.0, low_inclusive=False)
        _check_range(self, "max_bad_fraction", low=0.0, high=1.0, high_inclusive=False)

    def root_for(self, role: str, storage: str) -> str:
        """Where the raw dataset of ``role`` (classifier|source|target) lies."""
        if role not in ("classifier", "source", "target"):
            raise ValueError(f"role: expected classifier, source or target, got {role!r}")
        root = getattr(self, f"{role}_root")
        if root is not None:
            return root
        return f"{storage.rstrip('/')}/raw/{getattr(self, f'{role}_dataset')}"


@dataclass(frozen=True)
class DemoConfig:
    """The embedded default's pools (``dgqa_ray/demo/``), cut from the packaged photos and
    procedural images; used only where a data role's dataset is ``embedded``."""

    _section: ClassVar[str] = "demo"

    tile: tuple[int, int] = (96, 128)
    """(height, width) of the embedded default's tiles. 96 x 128 (KADID-10k's 384 x 512 / 4 per
    side) cuts the six photos into 110 tiles, enough for three content-disjoint pools (192 x 256
    gives 21); it holds one 96-pixel crop, the demo's crop size."""
    target_types: tuple[int, ...] = (1, 3, 10, 17, 18, 25)
    """KADID ids the embedded target's images are distorted with (one or more per image). The
    default is the set the paper selected for LIVEC (Table 2), so the demo's target looks to
    DGDS like LIVEC looked to the authors' classifier."""
    max_types_per_image: int = 2
    """Each embedded target image carries 1..this many of ``target_types``: mixtures, as in
    authentic photos."""
    classifier_refs: int | None = None
    """Tiles in the embedded classifier pool (KADIS-style); None: every tile of its photos
    (45 at 96 x 128)."""
    classifier_types_per_ref: int = 5
    """Distinct types each classifier tile is distorted with (x 5 levels). KADIS-700k gives each
    of its 140k references one type; with ~45 tiles that would leave about two tiles per class,
    so each tile carries several and every type still gets ~9 tiles."""
    source_refs: int = 8
    """Tiles in the embedded source pool, each x 25 types x 5 levels (KADID-style), taken
    round-robin over its photos: 8 gives 1,000 labelled images."""
    dead_leaves: int = 0
    """Procedural dead-leaves references added to the embedded classifier pool (content no
    photo shares; ``demo/dead_leaves.py``)."""
    source_dead_leaves: int = 0
    """Dead-leaves references added to the embedded source pool (other images than the
    classifier's)."""
    target_images: int = 100
    """Images in the embedded target pool, spread evenly over its tiles (several mixtures per
    tile, as an authentic set has several photos of similar scenes)."""
    seed: int = 0
    """Seed of the embedded pools: distortion noise, type assignment and mixture draws."""

    def __post_init__(self) -> None:
        _normalise(self)
        h, w = self.tile
        if min(h, w) < 32:
            _fail(self, "tile", self.tile, "(height, width), both >= 32")
        if not self.target_types:
            _fail(self, "target_types", (), f"one or more KADID ids 1..{NUM_KADID_TYPES}")
        _check_type_ids(self, "target_types")
        _check_range(
            self,
            "max_types_per_image",
            low=1,
            high=len(self.target_types),
            hint="it cannot exceed the number of demo.target_types",
        )
        if self.classifier_refs is not None:
            _check_range(self, "classifier_refs", low=1)
        _check_range(self, "classifier_types_per_ref", low=1, high=NUM_KADID_TYPES)
        _check_range(self, "source_refs", low=1)
        _check_range(self, "dead_leaves", low=0)
        _check_range(self, "source_dead_leaves", low=0)
        _check_range(self, "target_images", low=1)
        _check_range(self, "seed", low=0)


@dataclass(frozen=True)
class ModelConfig:
    """Backbone, heads and numeric format of the classifier and the regressor."""

    _section: ClassVar[str] = "model"

    backbone: str = "resnet50"
    """torchvision classification model for both F_D and F_R, by name: ResNet-50 in the paper
    (3.3); any ``torchvision.models`` classifier works (its last linear layer becomes the head),
    e.g. resnet18 or mobilenet_v3_small for CPU runs."""
    pretrained: str | None = None
    """A torchvision-style state dict (path, ``file://`` or ``s3://`` URI) that initialises the
    backbone of both models (its ``fc`` is skipped). None: random init, since nothing is ever
    downloaded at run time; point it at ImageNet weights for paper-like results."""
    num_classes: int = 25
    """Classifier outputs: 25 = the KADID types (paper 3.3, class i-1 = type i); 26 = the
    authors' code (class 0 = pristine, class i = type i)."""
    channels_last: bool = True
    """NHWC memory layout: faster convolutions with tensor cores (docs/design.md section 2)."""
    amp: str = "bf16"
    """Autocast dtype on GPU (bf16 needs no loss scaling). ``none`` turns it off. On CPU see
    ``cpu_bf16``."""
    cpu_bf16: str = "off"
    """bf16 autocast (and channels_last) on CPU: ``on``, ``off``, or ``auto`` (on where the CPU
    has bf16 units, AMX or AVX512-BF16, which make ResNet training 1.3-2x faster; elsewhere
    bf16 on a CPU is emulated and slower than float32). ``python jobs/benchmark.py cpu-bf16``
    measures it on your CPU."""
    regressor_init: str = "pretrained"
    """Where the regressor's backbone starts: ``pretrained`` (``model.pretrained``, or random
    without it; the paper: ImageNet) or ``classifier``: the trained domain classifier's backbone
    (distortion-aware features learnt from unlimited on-the-fly samples, for runs that have no
    pretrained weights)."""

    def __post_init__(self) -> None:
        _normalise(self)
        _check_backbone(self, "backbone")
        _check_uri(self, "pretrained", allow_none=True)
        _check_choice(self, "num_classes", (NUM_KADID_TYPES, NUM_KADID_TYPES + 1))
        _check_choice(self, "amp", AMP_MODES)
        _check_choice(self, "cpu_bf16", CPU_BF16)
        _check_choice(self, "regressor_init", REGRESSOR_INITS)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and scaling of both trainings (classifier and regressor)."""

    _section: ClassVar[str] = "train"

    optimizer: str = "adam"
    """Adam, as in the paper (4.1); its weight decay is the L2 term added to the gradient."""
    lr: float = 2e-5
    """Paper 4.1: 2 x 10^-5."""
    classifier_lr: float | None = None
    """The classifier's learning rate; None: ``lr`` (the paper gives one setting for both)."""
    lr_schedule: str = "constant"
    """``constant`` (the paper states one learning rate) or ``cosine``: linear warmup over
    ``warmup_fraction`` of the steps, then cosine decay to 0, stepped every batch."""
    warmup_fraction: float = 0.0
    """Share of a training's steps spent warming the learning rate up linearly from ~0."""
    regressor_trainable: str = "all"
    """``all``: the whole regressor is fine-tuned (paper); ``head``: only its last linear layer,
    on a frozen backbone (BatchNorm statistics frozen too), e.g. on top of
    ``model.regressor_init: classifier``."""
    weight_decay: float = 5e-4
    """Paper 4.1: 5 x 10^-4."""
    batch_size: int = 32
    """Images per optimizer step, over all workers together (paper 4.1: 32)."""
    eval_batch_size: int = 256
    """Crops per inference batch (validation, selection, evaluation). No gradients are kept, so
    larger batches cost little memory; it does not change results."""
    epochs: int = 15
    """Regressor epochs (paper 4.1: 15)."""
    classifier_epochs: int | None = None
    """Classifier epochs; None: same as ``epochs`` (the paper gives one setting for both)."""
    num_workers: int = 1
    """Ray Train workers (DDP ranks); one per GPU."""
    use_gpu: bool = True
    """The paper trains on GPUs; the demo preset turns this off."""
    cpus_per_worker: int = 4
    """CPUs reserved per Train worker; Ray sets the worker's torch threads to this, so on a
    CPU-only machine it should be the cores training may use. 0: derived from the cluster the
    job finds, ``(CPUs - 1) // num_workers`` (at least 1), so one CPU stays free for Ray Data's
    decoding tasks (``train.fit_to_cluster``; searches take 1)."""
    seed: int = 123
    """Seed of weight init, crops and splits: 123 as in the authors' sel_dist.py."""
    max_failures: int = 2
    """Worker-group restarts Ray Train tries (from the last checkpoint) before giving up;
    -1: unlimited."""
    placement_strategy: str = "PACK"
    """How Ray places the workers on nodes: PACK (Ray's default) fills as few nodes as
    possible, which keeps DDP's gradient all-reduce on one machine when it fits; SPREAD puts
    them on different nodes where it can (one GPU per node, or surviving a lost node);
    STRICT_* fail instead of falling back."""

    def __post_init__(self) -> None:
        _normalise(self)
        _check_choice(self, "optimizer", OPTIMIZERS)
        _check_range(self, "lr", low=0.0, low_inclusive=False)
        if self.classifier_lr is not None:
            _check_range(self, "classifier_lr", low=0.0, low_inclusive=False)
        _check_choice(self, "lr_schedule", LR_SCHEDULES)
        _check_range(self, "warmup_fraction", low=0.0, high=1.0, high_inclusive=False)
        _check_choice(self, "regressor_trainable", TRAINABLE)
        _check_range(self, "weight_decay", low=0.0)
        _check_range(self, "batch_size", low=1)
        _check_range(self, "eval_batch_size", low=1)
        _check_range(self, "epochs", low=1)
        if self.classifier_epochs is not None:
            _check_range(self, "classifier_epochs", low=1)
        _check_range(self, "num_workers", low=1)
        _check_range(self, "cpus_per_worker", low=0, hint="0 derives it from the cluster")
        _check_range(self, "seed", low=0)
        _check_range(self, "max_failures", low=-1)
        _check_choice(self, "placement_strategy", PLACEMENT_STRATEGIES)
        if self.batch_size % self.num_workers:
            raise ConfigError(
                f"train.batch_size: {self.batch_size} is not divisible by train.num_workers "
                f"{self.num_workers}; expected a multiple so every worker gets the same share"
            )

    def lr_for(self, task: str) -> float:
        """Learning rate of ``task`` (classifier|regressor)."""
        if task == "classifier":
            return self.lr if self.classifier_lr is None else self.classifier_lr
        if task == "regressor":
            return self.lr
        raise ValueError(f"task: expected classifier or regressor, got {task!r}")

    def epochs_for(self, task: str) -> int:
        """Epochs of ``task`` (classifier|regressor)."""
        if task == "classifier":
            return self.epochs if self.classifier_epochs is None else self.classifier_epochs
        if task == "regressor":
            return self.epochs
        raise ValueError(f"task: expected classifier or regressor, got {task!r}")


@dataclass(frozen=True)
class SelectionConfig:
    """Distortion-guided domain selection (DGDS): which rule keeps which source types."""

    _section: ClassVar[str] = "selection"

    rule: str = "mean_prob"
    """``mean_prob``: paper eq. 5-6 (mean probability over target images > tau). ``topk_vote``:
    the authors' sel_dist.py (top-k classes per image, share of votes >= share)."""
    tau: float | None = None
    """mean_prob threshold; None: 1/25, i.e. above the uniform share over the 25 source types
    (paper: tau = 1/k with k the number of source domains)."""
    k: int = 4
    """topk_vote: classes counted per image (``ntop = 4`` in sel_dist.py)."""
    share: float = 0.04
    """topk_vote: minimum share of votes (sel_dist.py: 0.04)."""
    vote_denominator: int = 3
    """topk_vote: votes are divided by N x this. sel_dist.py uses ``ntop - 1`` = 3 although 4
    classes are counted per image, so shares sum to 4/3; kept to reproduce its selections."""
    share_decimals: int | None = 2
    """topk_vote: sel_dist.py rounds the share to 2 decimals before comparing (0.035 passes
    0.04); None compares the unrounded share."""

    def __post_init__(self) -> None:
        _normalise(self)
        _check_choice(self, "rule", SELECTION_RULES)
        if self.tau is not None:
            _check_range(self, "tau", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
        _check_range(self, "k", low=1, high=NUM_KADID_TYPES + 1)
        _check_range(self, "share", low=0.0, high=1.0, low_inclusive=False)
        _check_range(self, "vote_denominator", low=1)
        if self.share_decimals is not None:
            _check_range(self, "share_decimals", low=0, high=10)

    @property
    def resolved_tau(self) -> float:
        """tau with None resolved to 1/25."""
        return 1.0 / NUM_KADID_TYPES if self.tau is None else self.tau


@dataclass(frozen=True)
class EvalConfig:
    """The paper's evaluation protocol on the source and target."""

    _section: ClassVar[str] = "eval"

    n_splits: int = 5
    """Random train/validation splits of the source, one regressor each; the median target
    SRCC/PLCC over them is reported (paper 4.1: five)."""
    train_fraction: float = 0.8
    """Share of reference contents in the training part of each split (paper 4.1: 80/20, by
    reference image); the classifier's dataset is split the same way."""
    split_seed: int = 0
    """Seed of the split draws; split i uses ``split_seed + i``."""
    oracle: bool = True
    """When the target's true types are known (the embedded default), also train a regressor
    on exactly those types per split: the best any domain selection could pick, reported next
    to baseline and DGQA."""
    baseline: bool = True
    """Also train the baseline regressor (all 25 types) per split. It is the comparison DGQA is
    measured against; on an unlabelled target, where nothing is measured, ``false`` halves the
    regressor work and ``target_predictions.csv`` holds the DGQA scores only."""

    def __post_init__(self) -> None:
        _normalise(self)
        _check_range(self, "n_splits", low=1)
        _check_range(
            self, "train_fraction", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False
        )
        _check_range(self, "split_seed", low=0)


@dataclass(frozen=True)
class SearchConfig:
    """Ray Tune searches around the selection (``jobs/tune_tau.py``, ``jobs/gds_search.py``).

    Each trial trains regressors on one domain set and scores them on the target; the cost of a
    trial is ``splits`` regressors of ``epochs`` epochs (docs/search.md)."""

    _section: ClassVar[str] = "search"

    taus: tuple[float, ...] = ()
    """mean_prob thresholds to sweep; empty: 0.5, 0.75, 1, 1.25 and 1.5 times 1/25."""
    rules: tuple[str, ...] = ("mean_prob", "topk_vote")
    """Rules in the tau sweep; ``topk_vote`` ignores tau and adds one trial
    (``selection.k``, ``selection.share``)."""
    splits: int = 1
    """Source splits per trial (the first ``splits`` of the paper's ``eval.n_splits``); the
    trial's score is the median target SRCC over them."""
    epochs: int | None = None
    """Regressor epochs per trial; None: ``train.epochs``."""
    max_concurrent: int = 0
    """Trials at once; 0: as many as the cluster's CPUs (or GPUs) hold, each trial needing
    ``train.num_workers x train.cpus_per_worker`` CPUs, one CPU kept for Ray Data."""
    gds_start: str = "empty"
    """Greedy search start: ``empty`` (paper 4.5) or ``dgds`` (the configured rule's set)."""
    gds_max_rounds: int = 25
    """Greedy rounds at most (one type added per round)."""
    gds_max_size: int = 25
    """Stop once the set holds this many types."""
    gds_candidates: tuple[int, ...] = ()
    """KADID ids the greedy search may add; empty: all 25."""
    gds_min_gain: float = 0.0
    """A round must raise the best target SRCC by more than this, or the search stops."""
    early_stop: bool = False
    """ASHA: trials report target SRCC every epoch and the weakest stop early (each epoch
    then costs a Ray Train start and a target evaluation)."""

    def __post_init__(self) -> None:
        _normalise(self)
        for tau in self.taus:
            if not 0.0 < float(tau) < 1.0:
                raise ConfigError(f"search.taus: expected values in (0, 1), got {tau!r}")
        if not self.rules:
            raise ConfigError("search.rules: expected at least one of mean_prob, topk_vote")
        for rule in self.rules:
            if rule not in SELECTION_RULES:
                raise ConfigError(
                    f"search.rules: invalid rule {rule!r}; allowed: {', '.join(SELECTION_RULES)}"
                )
        _check_range(self, "splits", low=1)
        if self.epochs is not None:
            _check_range(self, "epochs", low=1)
        _check_range(self, "max_concurrent", low=0)
        _check_choice(self, "gds_start", ("empty", "dgds"))
        _check_range(self, "gds_max_rounds", low=1)
        _check_range(self, "gds_max_size", low=1, high=NUM_KADID_TYPES)
        _check_type_ids(self, "gds_candidates")
        _check_range(self, "gds_min_gain", low=0.0)

    @property
    def resolved_taus(self) -> tuple[float, ...]:
        """``taus``, or the default grid around 1/25."""
        if self.taus:
            return tuple(float(t) for t in self.taus)
        return tuple(f / NUM_KADID_TYPES for f in (0.5, 0.75, 1.0, 1.25, 1.5))

    @property
    def resolved_candidates(self) -> tuple[int, ...]:
        """``gds_candidates``, or all 25 types, sorted."""
        return tuple(sorted(self.gds_candidates or range(1, NUM_KADID_TYPES + 1)))


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow: where runs are recorded. Credentials, if any, come from the environment."""

    _section: ClassVar[str] = "tracking"

    enabled: bool = True
    """Record runs in MLflow; an unreachable server never stops training either way."""
    tracking_uri: str = "sqlite:///dgqa_output/mlflow.db"
    """A SQLite store in the working directory: needs no server, and ``mlflow ui
    --backend-store-uri sqlite:///dgqa_output/mlflow.db`` opens it (the file store is
    deprecated). For the jobs, ``MLFLOW_TRACKING_URI`` in the environment overrides the file or
    preset and ``--set tracking.tracking_uri=`` overrides both (docs/cluster.md)."""
    experiment_name: str = "dgqa"
    """MLflow experiment holding one parent run per pipeline run."""
    log_models: bool = True
    """Log every trained model (the classifier and each regressor) as an MLflow model
    (``mlflow.pytorch``, name ``model``): loadable with ``mlflow.pytorch.load_model`` and by
    ``jobs/score.py --model runs:/<run_id>/model``. A resnet18 is ~45 MB per model."""
    registered_model: str | None = None
    """With a name, the DGQA regressor of split 0 is registered under it (a new version per
    run): ``jobs/score.py --model models:/<name>/<version>``. None: nothing is registered."""

    def __post_init__(self) -> None:
        _normalise(self)
        if self.registered_model is not None and not str(self.registered_model).strip():
            _fail(self, "registered_model", self.registered_model, "a non-empty name or null")
        if not self.tracking_uri.strip():
            _fail(self, "tracking_uri", self.tracking_uri, "a non-empty MLflow tracking URI")
        _check_no_credentials(self, "tracking_uri")
        if not self.experiment_name.strip():
            _fail(self, "experiment_name", self.experiment_name, "a non-empty name")


@dataclass(frozen=True)
class PipelineConfig:
    """A whole pipeline run: its name, where it writes, and every stage's section."""

    _section: ClassVar[str] = ""

    run_name: str = "dgqa"
    """Names the run's folder under ``storage`` and its MLflow parent run; rerunning with the
    same name resumes from its checkpoints and reuses finished stages."""
    storage: str = "dgqa_output/storage"
    """Local path or ``s3://bucket/prefix``: datasets, checkpoints, selection tables and
    reports go under it (docs/design.md section 1)."""
    output_dir: str = "dgqa_output"
    """Local folder for what the driver prints and plots (copies of reports, charts)."""
    classifier_run: str = ""
    """The domain classifier's training run. Empty: ``<run_name>-classifier``. Another run's
    name (``demo-classifier``) shares that run's classifier: it depends only on the classifier
    data and the model, not on the target, so runs on other targets need not train their
    own."""
    redo: tuple[str, ...] = ()
    """Stages to recompute even if their outputs exist (any of data, classifier, selection,
    regressors, all); a redone training starts over from epoch 0. Empty: reuse everything
    finished."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)

    def __post_init__(self) -> None:
        _normalise(self)
        if not _RUN_NAME.match(self.run_name):
            _fail(
                self,
                "run_name",
                self.run_name,
                "letters, digits, '.', '_' or '-' (it names folders and runs), at most 128",
            )
        if self.classifier_run and not _RUN_NAME.match(self.classifier_run):
            _fail(
                self,
                "classifier_run",
                self.classifier_run,
                "empty, or letters, digits, '.', '_' or '-' (it names a folder), at most 128",
            )
        _check_uri(self, "storage", allow_none=False)
        if "://" in self.output_dir:
            _fail(self, "output_dir", self.output_dir, "a local folder path (not a URI)")
        for stage in self.redo:
            if stage not in STAGES:
                raise ConfigError(f"redo: invalid stage {stage!r}; allowed: {', '.join(STAGES)}")
        if self.search.splits > self.eval.n_splits:
            raise ConfigError(
                f"search.splits: {self.search.splits} exceeds eval.n_splits {self.eval.n_splits}"
            )
        if self.selection.k > self.model.num_classes:
            raise ConfigError(
                f"selection.k: {self.selection.k} exceeds model.num_classes "
                f"{self.model.num_classes}"
            )
        data, tile = self.data, self.demo.tile
        uses_embedded = "embedded" in (
            data.classifier_dataset,
            data.source_dataset,
            data.target_dataset,
        )
        if uses_embedded and data.crop_size > min(tile):
            raise ConfigError(
                f"data.crop_size: {data.crop_size} does not fit in demo.tile {tile}; "
                f"expected crop_size <= {min(tile)}"
            )

    @property
    def classifier_run_name(self) -> str:
        """The classifier's training run: ``classifier_run``, or ``<run_name>-classifier``."""
        return self.classifier_run or f"{self.run_name}-classifier"

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (lists, not tuples), as saved to YAML."""
        return _plain(dataclasses.asdict(self))

    def to_flat_dict(self) -> dict[str, Any]:
        """``{"train.lr": 2e-05, ...}``: one entry per field, for MLflow params."""
        flat: dict[str, Any] = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                for sub, v in value.items():
                    flat[f"{key}.{sub}"] = v
            else:
                flat[key] = value
        return flat

    def redo_stage(self, stage: str) -> bool:
        """True when ``stage`` must be recomputed even if its outputs exist (``all`` included)."""
        if stage not in STAGES:
            raise ValueError(f"stage: expected one of {', '.join(STAGES)}, got {stage!r}")
        return stage in self.redo or "all" in self.redo

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, where: str = "config") -> PipelineConfig:
        """Build from a nested mapping (YAML content); missing keys take the defaults."""
        return _from_mapping(cls, values or {}, where)


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "selection": SelectionConfig,
    "eval": EvalConfig,
    "search": SearchConfig,
    "tracking": TrackingConfig,
    "demo": DemoConfig,
}


# --------------------------------------------------------------------------------------------
# Loading, overrides, saving
# --------------------------------------------------------------------------------------------


PRESET_DIR = Path(__file__).resolve().parent / "configs"
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
            _known_key(parts[0], PipelineConfig, "--set")
            values[parts[0]] = raw.strip()
        elif len(parts) == 2:
            section, name = parts
            if section not in SECTIONS:
                raise ConfigError(
                    f"--set {item!r}: unknown section {section!r}; known sections: "
                    f"{', '.join(SECTIONS)}"
                )
            _known_key(name, SECTIONS[section], f"--set {section}")
            sub = values.get(section)
            sub = dict(sub) if isinstance(sub, dict) else {}
            sub[name] = raw.strip()
            values[section] = sub
        elif len(parts) == 3 and parts[0] in SECTIONS:
            # section.mapping_field.key=value, for the mapping fields (data.target_options.*)
            section, name, key_name = parts
            _known_key(name, SECTIONS[section], f"--set {section}")
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


RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
"""Set by Ray in the environment of a job started with ``ray job submit``."""


def running_as_ray_job() -> bool:
    """True inside a job started with ``ray job submit``, whose working directory is Ray's
    temporary copy of the submitted one (removed when Ray cleans its session)."""
    return bool(os.environ.get(RAY_JOB_ENV))


def default_base_dir() -> Path | None:
    """Where relative paths resolve when no ``--base-dir`` is given: the working directory
    (None) for a job run directly; the home directory under ``ray job submit``, so that a
    submitted run's results outlive Ray's temporary copy of the working directory and a second
    submit finds them."""
    return Path.home() if running_as_ray_job() else None


def _absolute(path: str, base: Path) -> str:
    if "://" in path or os.path.isabs(os.path.expanduser(path)):
        return os.path.expanduser(path)
    return str(base / path)


def resolve_relative_paths(
    cfg: PipelineConfig, base: str | os.PathLike[str] | None
) -> PipelineConfig:
    """``cfg`` with every relative local path (``storage``, ``output_dir``, the SQLite file of
    ``tracking.tracking_uri``, the data roots, ``model.pretrained``) made absolute against
    ``base``; None: unchanged."""
    if base is None:
        return cfg
    root = Path(base).expanduser().resolve()
    data = cfg.data
    roots = {
        f"{role}_root": _absolute(getattr(data, f"{role}_root"), root)
        for role in ("classifier", "source", "target")
        if getattr(data, f"{role}_root")
    }
    tracking = cfg.tracking
    uri = tracking.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + _absolute(uri.removeprefix("sqlite:///"), root)
    pretrained = cfg.model.pretrained
    return dataclasses.replace(
        cfg,
        storage=_absolute(cfg.storage, root),
        output_dir=_absolute(cfg.output_dir, root),
        data=dataclasses.replace(data, **roots),
        model=dataclasses.replace(
            cfg.model, pretrained=_absolute(pretrained, root) if pretrained else None
        ),
        tracking=dataclasses.replace(tracking, tracking_uri=uri),
    )


def add_config_arguments(parser: argparse.ArgumentParser, default: str = "demo") -> None:
    """Add ``--config``, ``--set``, ``--base-dir`` and ``--verbose`` to a job's argument parser."""
    parser.add_argument(
        "--config",
        default=default,
        help=f"preset name ({', '.join(list_presets())}) or YAML path (default: {default})",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one config value, e.g. --set train.epochs=3 (repeatable)",
    )
    parser.add_argument(
        "--base-dir",
        default=None,
        metavar="DIR",
        help="resolve relative paths of the config (storage, output_dir, the SQLite MLflow "
        "store, data roots) against DIR (default: the working directory; under ray job submit, "
        'the home directory). E.g. ray job submit --working-dir . -- python ... --base-dir "$PWD"',
    )
    add_verbose_argument(parser)


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """``--verbose``: Ray's own logs on the console too (by default they go to its log folder)."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's own logs (Ray Data plans and progress, Ray Train's worker-group and "
        "checkpoint lines) on the console; by default they go to /tmp/ray/session_latest/logs",
    )


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The config named by ``--config`` with the ``--set`` overrides applied.

    The MLflow store of a job comes, in this order, from ``--set tracking.tracking_uri=...``,
    the ``MLFLOW_TRACKING_URI`` environment variable, then the YAML file or preset. So a
    cluster whose nodes export ``MLFLOW_TRACKING_URI`` sends every job to the team's server
    without editing presets, and the resolved config (saved with the run, logged as MLflow
    params) names the store actually used. Its credentials stay in the environment
    (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``): a URI carrying a password is refused.

    Also sets the console's verbosity from ``--verbose`` (``ray_session.configure_console``).
    """
    from dgqa_ray.ray_session import configure_console

    configure_console(bool(getattr(args, "verbose", False)))
    overrides = list(args.overrides)
    env_uri = os.environ.get(TRACKING_URI_ENV, "").strip()
    set_on_command_line = any(
        item.partition("=")[0].strip() == "tracking.tracking_uri" for item in overrides
    )
    if env_uri and not set_on_command_line:
        try:
            TrackingConfig(tracking_uri=env_uri)
        except ConfigError as e:
            raise ConfigError(f"{TRACKING_URI_ENV} (environment): {e}") from None
        overrides.insert(0, f"tracking.tracking_uri={env_uri}")
    cfg = load_config(args.config, overrides)
    base = getattr(args, "base_dir", None)
    if base is not None and ("://" in str(base) or not str(base).strip()):
        raise ConfigError(f"--base-dir: expected a local folder, got {redact_uri(str(base))!r}")
    return resolve_relative_paths(cfg, base if base is not None else default_base_dir())


# --------------------------------------------------------------------------------------------
# Coercion and checks (shared by every section)
# --------------------------------------------------------------------------------------------

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NULL = {"null", "none", "~", ""}


def _where(obj: Any, name: str) -> str:
    section = type(obj)._section
    return f"{section}.{name}" if section else name


def _fail(obj: Any, name: str, value: Any, expected: str) -> typing.NoReturn:
    raise ConfigError(f"{_where(obj, name)}: invalid value {value!r}; expected {expected}")


def _normalise(obj: Any) -> None:
    """Coerce every field of a frozen dataclass to its annotated type, in place."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        coerced = _coerce(value, hints[f.name], _where(obj, f.name))
        if coerced is not value:
            object.__setattr__(obj, f.name, coerced)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return {
            "str": "a string",
            "int": "an integer",
            "float": "a number",
            "bool": "true/false",
        }.get(annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        non_null = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in _NULL):
            return None
        assert len(non_null) == 1, annotation
        return _coerce(value, non_null[0], where)
    if origin is tuple:
        return _coerce_tuple(value, args, where)
    if origin is dict:
        return _coerce_mapping(value, where)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if isinstance(value, Mapping):
            return _from_mapping(annotation, value, where)
        if value is None:
            return annotation()
        raise ConfigError(
            f"{where}: expected a mapping of {annotation._section} keys, got {value!r}"
        )
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a field type this function was not taught
        raise TypeError(f"{where}: unsupported field type {annotation!r}")
    hint = " (quote it in YAML)" if annotation is str else ""
    raise ConfigError(
        f"{where}: expected {_type_name(annotation)}, got {value!r} ({type(value).__name__}){hint}"
    )


def _coerce_mapping(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{where}: couldn't parse mapping {text!r}: {e}") from e
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(
            f"{where}: expected a mapping of option names to values (e.g. {{score_column: mos}}),"
            f" got {value!r}"
        )
    return dict(value)


def _coerce_tuple(value: Any, args: tuple, where: str) -> tuple:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise ConfigError(f"{where}: couldn't parse list {text!r}: {e}") from e
        else:
            value = [v.strip() for v in text.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r} ({type(value).__name__})")
    if len(args) == 2 and args[1] is Ellipsis:
        item_types = [args[0]] * len(value)
    else:
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {list(value)!r}")
        item_types = list(args)
    return tuple(
        _coerce(v, t, f"{where}[{i}]")
        for i, (v, t) in enumerate(zip(value, item_types, strict=True))
    )


def _refuse_moved_keys(names: Iterable[str], cls: type, where: str) -> None:
    """ConfigError naming every key of ``names`` that ``cls`` lists as moved, and its new name
    (``data.embedded_tile: moved to demo.tile``)."""
    moved: Mapping[str, str] = getattr(cls, "_moved", {})
    old = [name for name in names if name in moved]
    if old:
        raise ConfigError(
            "; ".join(f"{where}.{name}: moved to {moved[name]}" for name in old)
            + " (the embedded demo's settings have a section of their own, demo)"
        )


def _known_key(name: str, cls: type, where: str) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    if name in known:
        return
    _refuse_moved_keys([name], cls, where)
    close = difflib.get_close_matches(name, known, n=1)
    suggestion = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"{where}: unknown key {name!r}{suggestion}; known keys: {', '.join(known)}")


def _from_mapping(cls: type, values: Mapping[str, Any], where: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    context = cls._section or where
    _refuse_moved_keys([str(key) for key in values], cls, context)
    for key in values:
        _known_key(str(key), cls, context)
    return cls(**{str(k): v for k, v in values.items()})


def _check_choice(obj: Any, name: str, allowed: Iterable[Any]) -> None:
    allowed = tuple(allowed)
    value = getattr(obj, name)
    if value not in allowed:
        raise ConfigError(
            f"{_where(obj, name)}: invalid value {value!r}; allowed: "
            + ", ".join(str(a) for a in allowed)
        )


def _check_range(
    obj: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    hint: str = "",
) -> None:
    value = getattr(obj, name)
    ok = True
    if low is not None:
        ok &= value >= low if low_inclusive else value > low
    if high is not None:
        ok &= value <= high if high_inclusive else value < high
    if ok:
        return
    lo = "" if low is None else f"{'>=' if low_inclusive else '>'} {low}"
    hi = "" if high is None else f"{'<=' if high_inclusive else '<'} {high}"
    expected = " and ".join(p for p in (lo, hi) if p)
    raise ConfigError(
        f"{_where(obj, name)}: invalid value {value!r}; expected {expected}"
        + (f" ({hint})" if hint else "")
    )


@lru_cache(maxsize=1)
def _torchvision_classifiers() -> frozenset[str]:
    import torchvision.models  # lazy: only a backbone outside the ResNets needs the list

    return frozenset(torchvision.models.list_models(module=torchvision.models))


def _check_backbone(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if value in BACKBONES:
        return
    known = _torchvision_classifiers()
    if value not in known:
        close = difflib.get_close_matches(str(value), sorted(known), n=3)
        raise ConfigError(
            f"{_where(obj, name)}: invalid value {value!r}; expected a torchvision "
            "classification model name (torchvision.models.list_models(module=torchvision.models))"
            + (f"; did you mean {', '.join(close)}?" if close else "")
        )


def _check_adapter_options(obj: Any, role: str) -> None:
    """``<role>_options`` must be options the role's adapter takes (the embedded default's
    pools set their own)."""
    name = f"{role}_options"
    options = getattr(obj, name)
    if not options:
        return
    dataset = getattr(obj, f"{role}_dataset")
    if dataset == "embedded":
        raise ConfigError(
            f"{_where(obj, name)}: the embedded default sets its adapters' options itself; "
            f"expected no options, got {sorted(options)}"
        )
    from dgqa_ray.data.adapters import adapter_options  # lazy: pandas and pyarrow

    allowed = adapter_options(dataset)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        listed = ", ".join(f"{k} (default {v!r})" for k, v in allowed.items()) or "none"
        raise ConfigError(
            f"{_where(obj, name)}: {dataset} takes no option {', '.join(unknown)}; "
            f"options it takes: {listed}"
        )


def _check_type_ids(obj: Any, name: str) -> None:
    ids = getattr(obj, name)
    bad = [i for i in ids if not 1 <= i <= NUM_KADID_TYPES]
    if bad or len(set(ids)) != len(ids):
        _fail(obj, name, list(ids), f"distinct KADID ids in 1..{NUM_KADID_TYPES}")


def _check_uri(obj: Any, name: str, allow_none: bool) -> None:
    value = getattr(obj, name)
    if value is None and allow_none:
        return
    if value is None or not str(value).strip():
        _fail(obj, name, value, "a local path or an s3:// URI")
    if "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme not in _URI_SCHEMES:
            _fail(obj, name, value, "a local path, file:// or s3:// URI")
    _check_no_credentials(obj, name)


def _check_no_credentials(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if carries_credentials(value):
        # Never echo the value: it holds a secret.
        raise ConfigError(credentials_message(_where(obj, name)))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def with_search_overrides(cfg: PipelineConfig, max_concurrent: int | None = None) -> PipelineConfig:
    """``cfg`` with a job's ``--max-concurrent`` (when given) applied to ``search``."""
    if max_concurrent is None:
        return cfg
    search = dataclasses.replace(cfg.search, max_concurrent=max_concurrent)
    return dataclasses.replace(cfg, search=search)
