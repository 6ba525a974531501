"""The domain classifier F_D and the quality regressor F_R: torchvision ResNets with a new head.

Paper 3.3: "the tailored ResNet-50 whose fully connected (FC) layer is replaced with an FC layer
with 25 nodes" (F_D) or "with one node" (F_R). The authors' published classifier has 26 outputs,
class 0 being pristine images; ``ModelConfig.num_classes`` picks either.

Nothing is downloaded: backbones are built with ``weights=None`` and initialised from the state
dict that ``ModelConfig.pretrained`` names, if any (``load_pretrained``).

Images stay uint8 until they are on the device; ``normalize_uint8`` turns them into ImageNet-
normalised floats there, which moves 4x fewer bytes than shipping float32 from the data
workers (docs/design.md section 2).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision import models as tv_models

from dgqa_ray.config import NUM_KADID_TYPES, ModelConfig

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""RGB mean of ImageNet: the torchvision weights and the authors' data_loader.py use it."""
IMAGENET_STD = (0.229, 0.224, 0.225)


def create_backbone(name: str, num_outputs: int) -> nn.Module:
    """A randomly initialised torchvision classification model (``torchvision.models.get_model``
    by name: ``resnet50``, ``mobilenet_v3_small``, ...) with ``num_outputs`` outputs."""
    if name not in tv_models.list_models(module=tv_models):
        raise ValueError(
            f"backbone: invalid value {name!r}; expected a torchvision classification model "
            "(torchvision.models.list_models(module=torchvision.models))"
        )
    if num_outputs < 1:
        raise ValueError(f"num_outputs: expected >= 1, got {num_outputs!r}")
    model = tv_models.get_model(name, weights=None, num_classes=num_outputs)
    head_name(model)  # every model used here must have a linear head
    return model


def head_name(model: nn.Module) -> str:
    """Qualified name of the model's head: its last ``nn.Linear`` (``fc`` for ResNets,
    ``classifier.3`` for MobileNetV3, ``heads.head`` for ViT)."""
    name = None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            name = module_name
    if name is None:
        raise ValueError(f"model: {type(model).__name__} has no linear layer to use as its head")
    return name


def set_head_bias(model: nn.Module, value: float) -> None:
    """Set the head's bias to ``value`` (a one-output regressor starts predicting it)."""
    head = model.get_submodule(head_name(model))
    if head.bias is None:
        return
    with torch.no_grad():
        head.bias.fill_(float(value))


def is_head_key(model: nn.Module, key: str) -> bool:
    """True for the state-dict keys of the head (``fc.weight``, ``fc.bias``)."""
    return key.startswith(head_name(model) + ".")


def create_classifier(cfg: ModelConfig, load_weights: bool = True) -> nn.Module:
    """F_D: the backbone with a ``num_classes``-way head (logits; softmax is applied later).

    Args:
        cfg: the model section; ``cfg.pretrained`` initialises the backbone when set.
        load_weights: False skips ``cfg.pretrained`` (e.g. when a checkpoint is restored next).
    """
    model = create_backbone(cfg.backbone, cfg.num_classes)
    if load_weights and cfg.pretrained:
        load_pretrained(model, cfg.pretrained)
    return model


def create_regressor(cfg: ModelConfig, load_weights: bool = True) -> nn.Module:
    """F_R: the backbone with one output, the predicted quality score (B, 1)."""
    model = create_backbone(cfg.backbone, 1)
    if load_weights and cfg.pretrained:
        load_pretrained(model, cfg.pretrained)
    return model


def create_model(task: str, cfg: ModelConfig, load_weights: bool = True) -> nn.Module:
    """F_D for ``task == "classifier"``, F_R for ``"regressor"`` (what a checkpoint names)."""
    if task == "classifier":
        return create_classifier(cfg, load_weights)
    if task == "regressor":
        return create_regressor(cfg, load_weights)
    raise ValueError(f"task: invalid value {task!r}; allowed: classifier, regressor")


# --------------------------------------------------------------------------------------------
# Class ids <-> KADID distortion types
# --------------------------------------------------------------------------------------------


def class_dist_types(num_classes: int) -> np.ndarray:
    """KADID id of each classifier output: (25,) = 1..25, or (26,) = 0 (pristine), 1..25."""
    if num_classes == NUM_KADID_TYPES:
        return np.arange(1, NUM_KADID_TYPES + 1)
    if num_classes == NUM_KADID_TYPES + 1:
        return np.arange(0, NUM_KADID_TYPES + 1)
    raise ValueError(
        f"num_classes: invalid value {num_classes!r}; allowed: "
        f"{NUM_KADID_TYPES}, {NUM_KADID_TYPES + 1}"
    )


def dist_type_to_class(dist_type: torch.Tensor | np.ndarray, num_classes: int) -> torch.Tensor:
    """Class index of each KADID id (0 = pristine allowed only with 26 classes), int64."""
    labels = torch.as_tensor(np.asarray(dist_type) if not torch.is_tensor(dist_type) else dist_type)
    labels = labels.to(torch.int64)
    low = 1 if num_classes == NUM_KADID_TYPES else 0
    class_dist_types(num_classes)  # validates num_classes
    if labels.numel() and (labels.min() < low or labels.max() > NUM_KADID_TYPES):
        bad = labels[(labels < low) | (labels > NUM_KADID_TYPES)][:5].tolist()
        raise ValueError(
            f"dist_type: expected KADID ids in {low}..{NUM_KADID_TYPES} for a {num_classes}-class "
            f"classifier, found {bad}"
            + (" (pristine images need num_classes=26)" if 0 in bad else "")
        )
    return labels - 1 if num_classes == NUM_KADID_TYPES else labels


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadReport:
    """What ``load_pretrained`` did: keys loaded, skipped (head), missing and unexpected."""

    source: str
    loaded: int
    skipped: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]


def _read_state_bytes(source: str) -> bytes:
    if source.startswith("s3://"):
        try:
            from dgqa_ray import storage  # lazy: only s3:// sources need the data layer
        except ImportError as e:
            raise RuntimeError(
                f"pretrained: reading {source!r} needs dgqa_ray.storage, which failed to "
                f"import: {e}"
            ) from e
        return storage.read_bytes(source)
    path = Path(source.removeprefix("file://"))
    if not path.is_file():
        raise FileNotFoundError(f"pretrained: no weights file at {source!r}")
    return path.read_bytes()


def _unwrap_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    # Accept a bare state dict, or the common checkpoint wrappers around one.
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(
            f"pretrained: {source!r} does not hold a state dict (a mapping of tensors, or one "
            "under 'state_dict'/'model')"
        )
    # DDP-saved weights carry a "module." prefix.
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_pretrained(
    model: nn.Module,
    source: str | Path | Mapping[str, torch.Tensor],
    skip_head: bool = True,
    strict: bool = True,
) -> LoadReport:
    """Initialise ``model`` from a torchvision-style state dict, skipping the ``fc`` head.

    Args:
        model: a model from ``create_backbone`` (or ``create_classifier``/``create_regressor``).
        source: local path, ``file://`` or ``s3://`` URI, or an in-memory state dict.
        skip_head: leave the head (``fc.*`` for ResNets, ``head_name``) as initialised:
            ImageNet's 1000-way head has nothing to do with 25 types or one score.
        strict: raise when a backbone key is missing or unexpected; False only logs it.

    Raises:
        FileNotFoundError: no file at ``source``.
        ValueError: not a state dict, tensor shapes that differ (another backbone?), or, when
            strict, missing/unexpected keys. The message lists the first offending keys.
    """
    label = "<state dict>" if isinstance(source, Mapping) else str(source)
    if isinstance(source, Mapping):
        state = _unwrap_state_dict(source, label)
    else:
        raw = _read_state_bytes(label)
        try:
            obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"pretrained: couldn't load {label!r} with torch.load: {e}") from e
        state = _unwrap_state_dict(obj, label)

    own = model.state_dict()
    head = head_name(model) + "."
    is_head = (lambda k: k.startswith(head)) if skip_head else (lambda k: False)
    skipped = tuple(sorted(k for k in state if is_head(k)))
    wanted = {k: v for k, v in state.items() if not is_head(k)}
    missing = tuple(sorted(k for k in own if k not in wanted and not is_head(k)))
    unexpected = tuple(sorted(k for k in wanted if k not in own))
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in wanted.items()
        if k in own and v.shape != own[k].shape
    ]
    if mismatched:
        raise ValueError(
            f"pretrained: {len(mismatched)} tensor shapes in {label!r} differ from the model "
            f"(saved from another backbone?): " + "; ".join(mismatched[:5])
        )
    if strict and (missing or unexpected):
        raise ValueError(
            f"pretrained: {label!r} does not match the model: {len(missing)} missing keys "
            f"{list(missing[:8])}, {len(unexpected)} unexpected keys {list(unexpected[:8])} "
            "(saved from another backbone? pass strict=False to load the keys that match)"
        )
    if missing or unexpected:
        log.warning(
            "pretrained %s: %d missing keys %s, %d unexpected keys %s (ignored)",
            label,
            len(missing),
            list(missing[:8]),
            len(unexpected),
            list(unexpected[:8]),
        )
    loadable = {k: v for k, v in wanted.items() if k in own}
    model.load_state_dict(loadable, strict=False)
    return LoadReport(label, len(loadable), skipped, missing, unexpected)


# --------------------------------------------------------------------------------------------
# Device placement and input normalisation
# --------------------------------------------------------------------------------------------


def prepare_for_device(
    model: nn.Module, device: torch.device | str, channels_last: bool = False
) -> nn.Module:
    """Move ``model`` to ``device``, in channels_last layout if asked (best with tensor cores)."""
    model = model.to(torch.device(device))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
"""``/proc/cpuinfo`` flags of CPU units that run bf16 matrix products natively."""


def cpu_bf16_units() -> str | None:
    """The first of ``BF16_CPU_FLAGS`` this CPU reports (Linux ``/proc/cpuinfo``), or None.
    With either, oneDNN trains a ResNet in bf16 + channels_last faster than in float32
    (``python jobs/benchmark.py cpu-bf16``: 1.8x on a 2-core AVX512-BF16 machine); without,
    bf16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return None
    return next((flag for flag in BF16_CPU_FLAGS if flag in flags), None)


def numeric_format(cfg: ModelConfig, device: torch.device | str) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, channels_last)`` for ``device``: bf16 and ``cfg.channels_last``
    on CUDA (``cfg.amp``); on CPU bf16 + channels_last only when ``cfg.cpu_bf16`` is ``on``, or
    ``auto`` on a CPU with bf16 units (``cpu_bf16_units``), float32 NCHW otherwise."""
    kind = torch.device(device).type
    if kind == "cuda":
        return (torch.bfloat16 if cfg.amp == "bf16" else None), bool(cfg.channels_last)
    if cfg.cpu_bf16 == "on" or (cfg.cpu_bf16 == "auto" and cpu_bf16_units() is not None):
        return torch.bfloat16, True
    return None, False


def autocast_dtype(cfg: ModelConfig, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype of ``numeric_format`` (None: float32)."""
    return numeric_format(cfg, device)[0]


_norm_cache: dict[tuple[str, int | None], tuple[torch.Tensor, torch.Tensor]] = {}


def _scale_shift(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (device.type, device.index)
    if key not in _norm_cache:
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32)
        # (x / 255 - mean) / std == x * scale + shift: two in-place passes, one allocation.
        scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1)
        shift = (-mean / std).view(1, 3, 1, 1)
        _norm_cache[key] = (scale.to(device), shift.to(device))
    return _norm_cache[key]


def normalize_uint8(
    images: torch.Tensor | np.ndarray,
    device: torch.device | str | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> ImageNet-normalised float32 (B, 3, H, W) on ``device``.

    The uint8 batch is moved first (4x fewer bytes than float32), then converted there.
    ``device`` None keeps the tensor where it is.
    """
    if isinstance(images, np.ndarray):
        images = _from_numpy(images)
    if not torch.is_tensor(images) or images.dtype != torch.uint8:
        dtype = images.dtype if hasattr(images, "dtype") else type(images).__name__
        raise ValueError(f"images: expected a uint8 (B, 3, H, W) batch, got dtype {dtype}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected shape (B, 3, H, W), got {tuple(images.shape)}")
    if device is not None:
        target = torch.device(device)
        images = images.to(target, non_blocking=target.type == "cuda")
    scale, shift = _scale_shift(images.device)
    out = images.float().mul_(scale).add_(shift)  # (B, 3, H, W) float32
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        # Ray Data hands out read-only views; torch warns on those but only reads them here
        # (the float conversion makes a new tensor), so a copy would be wasted time.
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    return torch.from_numpy(array)
