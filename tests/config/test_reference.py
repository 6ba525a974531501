"""The config reference in docs/pipeline.md (``dgqa_ray/config_reference.py``) is generated
from the config package's field docstrings and presets, and is current."""

from __future__ import annotations

from pathlib import Path

from dgqa_ray.config import SECTIONS, PipelineConfig


def test_the_config_reference_in_the_docs_is_generated_from_the_code():
    from dgqa_ray.config_reference import update

    doc = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"
    assert update(doc, write=False), "docs/pipeline.md is stale: run jobs/config_reference.py"


def test_every_field_has_its_docstring_found_in_the_package():
    import dataclasses

    from dgqa_ray.config_reference import field_docs

    docs = field_docs()
    for cls in (*SECTIONS.values(), PipelineConfig):
        for f in dataclasses.fields(cls):
            if cls is PipelineConfig and f.name in SECTIONS:
                continue
            assert docs.get(cls.__name__, {}).get(f.name), f"{cls.__name__}.{f.name}: no docstring"
