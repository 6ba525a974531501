"""The sections of a config, one frozen dataclass each: ``data``, ``model``, ``train``,
``selection``, ``eval``, ``search``, ``tracking`` and ``demo``.

Each field's docstring (the string under it) is its documentation: ``config_reference.py``
turns them into the reference table in docs/pipeline.md. Each section checks its own fields in
``__post_init__``; checks that need two sections are ``PipelineConfig``'s
(``pipeline_config.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .checks import (
    ConfigError,
    check_adapter_options,
    check_backbone,
    check_choice,
    check_no_credentials,
    check_range,
    check_type_ids,
    check_uri,
    fail,
    normalise,
)
from .choices import (
    AMP_MODES,
    CLASSIFIER_VIEWS,
    CPU_BF16,
    DATASETS,
    LR_SCHEDULES,
    NUM_KADID_TYPES,
    OPTIMIZERS,
    PLACEMENT_STRATEGIES,
    REGRESSOR_INITS,
    SELECTION_RULES,
    TRAINABLE,
)


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
        normalise(self)
        for role in ("classifier", "source", "target"):
            name = f"{role}_dataset"
            check_choice(self, name, DATASETS)
            check_uri(self, f"{role}_root", allow_none=True)
            check_adapter_options(self, role)
        check_range(self, "crop_size", low=32)  # ResNets downsample 32x
        check_range(self, "eval_crops", low=1)
        check_choice(self, "classifier_view", CLASSIFIER_VIEWS)
        check_range(self, "onthefly_samples_per_ref", low=1)
        check_range(self, "onthefly_val_images", low=1)
        check_range(self, "shard_mb", low=1)
        check_range(self, "max_image_megapixels", low=0.0, low_inclusive=False)
        check_range(self, "max_bad_fraction", low=0.0, high=1.0, high_inclusive=False)

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
        normalise(self)
        h, w = self.tile
        if min(h, w) < 32:
            fail(self, "tile", self.tile, "(height, width), both >= 32")
        if not self.target_types:
            fail(self, "target_types", (), f"one or more KADID ids 1..{NUM_KADID_TYPES}")
        check_type_ids(self, "target_types")
        check_range(
            self,
            "max_types_per_image",
            low=1,
            high=len(self.target_types),
            hint="it cannot exceed the number of demo.target_types",
        )
        if self.classifier_refs is not None:
            check_range(self, "classifier_refs", low=1)
        check_range(self, "classifier_types_per_ref", low=1, high=NUM_KADID_TYPES)
        check_range(self, "source_refs", low=1)
        check_range(self, "dead_leaves", low=0)
        check_range(self, "source_dead_leaves", low=0)
        check_range(self, "target_images", low=1)
        check_range(self, "seed", low=0)


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
        normalise(self)
        check_backbone(self, "backbone")
        check_uri(self, "pretrained", allow_none=True)
        check_choice(self, "num_classes", (NUM_KADID_TYPES, NUM_KADID_TYPES + 1))
        check_choice(self, "amp", AMP_MODES)
        check_choice(self, "cpu_bf16", CPU_BF16)
        check_choice(self, "regressor_init", REGRESSOR_INITS)


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
        normalise(self)
        check_choice(self, "optimizer", OPTIMIZERS)
        check_range(self, "lr", low=0.0, low_inclusive=False)
        if self.classifier_lr is not None:
            check_range(self, "classifier_lr", low=0.0, low_inclusive=False)
        check_choice(self, "lr_schedule", LR_SCHEDULES)
        check_range(self, "warmup_fraction", low=0.0, high=1.0, high_inclusive=False)
        check_choice(self, "regressor_trainable", TRAINABLE)
        check_range(self, "weight_decay", low=0.0)
        check_range(self, "batch_size", low=1)
        check_range(self, "eval_batch_size", low=1)
        check_range(self, "epochs", low=1)
        if self.classifier_epochs is not None:
            check_range(self, "classifier_epochs", low=1)
        check_range(self, "num_workers", low=1)
        check_range(self, "cpus_per_worker", low=0, hint="0 derives it from the cluster")
        check_range(self, "seed", low=0)
        check_range(self, "max_failures", low=-1)
        check_choice(self, "placement_strategy", PLACEMENT_STRATEGIES)
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
        normalise(self)
        check_choice(self, "rule", SELECTION_RULES)
        if self.tau is not None:
            check_range(self, "tau", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
        check_range(self, "k", low=1, high=NUM_KADID_TYPES + 1)
        check_range(self, "share", low=0.0, high=1.0, low_inclusive=False)
        check_range(self, "vote_denominator", low=1)
        if self.share_decimals is not None:
            check_range(self, "share_decimals", low=0, high=10)

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
        normalise(self)
        check_range(self, "n_splits", low=1)
        check_range(
            self, "train_fraction", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False
        )
        check_range(self, "split_seed", low=0)


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
        normalise(self)
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
        check_range(self, "splits", low=1)
        if self.epochs is not None:
            check_range(self, "epochs", low=1)
        check_range(self, "max_concurrent", low=0)
        check_choice(self, "gds_start", ("empty", "dgds"))
        check_range(self, "gds_max_rounds", low=1)
        check_range(self, "gds_max_size", low=1, high=NUM_KADID_TYPES)
        check_type_ids(self, "gds_candidates")
        check_range(self, "gds_min_gain", low=0.0)

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
        normalise(self)
        if self.registered_model is not None and not str(self.registered_model).strip():
            fail(self, "registered_model", self.registered_model, "a non-empty name or null")
        if not self.tracking_uri.strip():
            fail(self, "tracking_uri", self.tracking_uri, "a non-empty MLflow tracking URI")
        check_no_credentials(self, "tracking_uri")
        if not self.experiment_name.strip():
            fail(self, "experiment_name", self.experiment_name, "a non-empty name")
