"""``PipelineConfig``: a whole run, its top-level fields and one field per section, and the
checks that cross sections. ``SECTIONS`` maps each section's key to its class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dgqa_ray.user_input import NAME_PATTERN

from .checks import ConfigError, check_uri, fail, from_mapping, normalise, plain
from .choices import STAGES
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
        normalise(self)
        if not NAME_PATTERN.match(self.run_name):
            fail(
                self,
                "run_name",
                self.run_name,
                "letters, digits, '.', '_' or '-' (it names folders and runs), at most 128",
            )
        if self.classifier_run and not NAME_PATTERN.match(self.classifier_run):
            fail(
                self,
                "classifier_run",
                self.classifier_run,
                "empty, or letters, digits, '.', '_' or '-' (it names a folder), at most 128",
            )
        check_uri(self, "storage", allow_none=False)
        if "://" in self.output_dir:
            fail(self, "output_dir", self.output_dir, "a local folder path (not a URI)")
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
        return plain(dataclasses.asdict(self))

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
        return from_mapping(cls, values or {}, where)


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
