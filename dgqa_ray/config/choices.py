"""The values config fields may take: dataset, backbone and rule names, stage names, the
number of KADID types. Shared by the sections' checks and by code that needs the same lists
(``selection.py``, ``engine.py``, ...)."""

from __future__ import annotations

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
STAGES = ("data", "classifier", "selection", "regressors", "all")
"""Pipeline stages a rerun may be told to redo instead of reusing their outputs (``all``: every
stage)."""
