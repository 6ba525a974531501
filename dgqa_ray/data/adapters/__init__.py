"""Dataset adapters: each reads one dataset's published layout into the common index.

    from dgqa_ray.data.adapters import open_adapter
    index = open_adapter("kadid10k", "/data/kadid10k").index()          # pandas DataFrame
    index = open_adapter("koniq10k", "s3://bucket/raw/koniq", resolution="1024x768").index()
    index = open_adapter("custom", "/data/mine/index.csv", score_column="mos").index()

``index()`` returns exactly ``schema.INDEX_COLUMNS`` (see ``base.py``) and raises
``DatasetError`` naming the dataset, file and row for bad input. Ingestion (``ingest.py``) turns
an index into Parquet shards.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from ..errors import DatasetError
from .base import Adapter
from .bid import BidAdapter
from .custom import CustomAdapter
from .kadid import KadidAdapter
from .kadis import KadisAdapter
from .koniq import KoniqAdapter
from .livec import LivecAdapter
from .pipal import PAPER_TARGETS, PIPAL_SUBTYPES, PipalAdapter
from .spaq import SpaqAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    cls.name: cls
    for cls in (
        KadidAdapter,
        KadisAdapter,
        LivecAdapter,
        KoniqAdapter,
        BidAdapter,
        PipalAdapter,
        SpaqAdapter,
        CustomAdapter,
    )
}


def adapter_options(name: str) -> dict[str, Any]:
    """The keyword options an adapter takes, with their defaults (for --help and errors)."""
    cls = _adapter_class(name)
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def open_adapter(name: str, root: str | os.PathLike[str], **options: Any) -> Adapter:
    """The adapter for dataset ``name`` reading ``root`` (local path or s3:// URI).

    ``options`` are the adapter's keyword options (e.g. ``resolution`` for koniq10k, ``subtypes``
    for pipal, ``path_column``/``score_column`` for custom); an unknown one is an error listing
    the ones it takes.
    """
    cls = _adapter_class(name)
    allowed = adapter_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        listed = ", ".join(f"{k}={v!r}" for k, v in allowed.items()) or "none"
        raise ValueError(
            f"Invalid option(s) {unknown} for dataset {name!r}. Options it takes: {listed}."
        )
    return cls(root, **options)


def _adapter_class(name: str) -> type[Adapter]:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ValueError(
            f"Invalid dataset {name!r}. Only {', '.join(ADAPTERS)} are supported."
        ) from None


__all__ = [
    "ADAPTERS",
    "PAPER_TARGETS",
    "PIPAL_SUBTYPES",
    "Adapter",
    "BidAdapter",
    "CustomAdapter",
    "DatasetError",
    "KadidAdapter",
    "KadisAdapter",
    "KoniqAdapter",
    "LivecAdapter",
    "PipalAdapter",
    "SpaqAdapter",
    "adapter_options",
    "open_adapter",
]
