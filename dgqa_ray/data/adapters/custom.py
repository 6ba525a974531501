"""A user's own images, described by one table (CSV or Parquet): the "your photos" target.

Layout: ``root`` is the *table file itself* (``/data/my_photos/index.csv``,
``s3://bucket/photos/index.parquet``), with at least an image-path column::

    path,score               <- column names are configurable
    holiday/img_001.jpg,3.5
    /abs/path/img_002.png,4.1
    s3://bucket/other/img_003.jpg,2.0

Relative paths are resolved against the table's folder (``..`` included: ``../other/x.jpg`` names the
file it points to); absolute local paths and ``s3://`` URIs
are used as they are. ``score_column`` is optional: without it the images are an unlabelled
target (mos/score null), which is all domain selection needs. With it, ``mos`` is that column
and ``score`` its min-max normalisation to [0, 10] (flipped when ``higher_is_better=False``).
``image_id`` is ``id_column`` when given, else the path as written in the table; ``ref_id`` is
``ref_column`` when given (photos of one scene should share it, so splits keep them together),
else the image id.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from dgqa_ray import storage

from .base import (
    Adapter,
    ImageListing,
    missing_images_error,
    numeric_column,
    parse_table,
    require_columns,
    text_column,
)

TABLE_KINDS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _normalised_join(root: str, relpath: str) -> str:
    """``root`` + a relative table path with ``.`` and ``..`` resolved (``posixpath.normpath``
    on the local path or the S3 key)."""
    import posixpath

    if storage.is_s3(root):
        bucket_and_key = root[len("s3://") :]
        bucket, _, key = bucket_and_key.partition("/")
        joined = posixpath.normpath(posixpath.join("/", key, relpath)).lstrip("/")
        return f"s3://{bucket}/{joined}"
    return posixpath.normpath(posixpath.join(root, relpath))


class CustomAdapter(Adapter):
    """Images listed in a CSV/Parquet table, with or without scores."""

    name = "custom"
    index_file = "<the table file given as root>"
    scale = "as given in score_column (none: unlabelled)"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        path_column: str = "path",
        score_column: str | None = None,
        id_column: str | None = None,
        ref_column: str | None = None,
        higher_is_better: bool = True,
        dataset_name: str = "custom",
    ) -> None:
        """``root``: the CSV/Parquet table; ``path_column``: image locations; ``score_column``:
        scores (None: unlabelled); ``id_column``/``ref_column``: image and content ids (None:
        the path as written); ``higher_is_better``: direction of the scores;
        ``dataset_name``: the value of the ``dataset`` column (and the storage folder name)."""
        super().__init__(root)
        suffix = "." + self.root.rsplit(".", 1)[-1].lower() if "." in self.root else ""
        if suffix not in TABLE_KINDS:
            raise ValueError(
                f"Invalid custom table {root!r}: root must be the table file itself, ending in "
                f"{', '.join(TABLE_KINDS)}"
            )
        if not dataset_name or not dataset_name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(
                f"Invalid dataset_name {dataset_name!r}: use letters, digits, '_' and '-' only "
                "(it becomes a folder name under the storage root)"
            )
        self.kind = TABLE_KINDS[suffix]
        self.table = self.root
        self.root = storage.parent(self.table)
        self.index_file = storage.basename(self.table)
        self.name = dataset_name
        self.higher_is_better = higher_is_better
        self.labelled = score_column is not None
        self.path_column = path_column
        self.score_column = score_column
        self.id_column = id_column
        self.ref_column = ref_column

    def __repr__(self) -> str:
        return f"CustomAdapter(root={self.table!r}, dataset_name={self.name!r})"

    def _read(self) -> pd.DataFrame:
        file, data = self.read_index_bytes(self.index_file, what="table")
        table = parse_table(data, self.kind, dataset=self.name, file=file)
        required = [
            c
            for c in (self.path_column, self.score_column, self.id_column, self.ref_column)
            if c is not None
        ]
        require_columns(table, required, dataset=self.name, file=file)
        if table.empty:
            return pd.DataFrame(columns=["image_id", "ref_id", "path"])
        written = text_column(table, self.path_column, dataset=self.name, file=file)
        paths = self._resolve(list(written), table["_row"].tolist(), file)
        if self.id_column is not None:
            ids = text_column(table, self.id_column, dataset=self.name, file=file).tolist()
        else:
            ids = list(written)
        if self.ref_column is not None:
            refs = text_column(table, self.ref_column, dataset=self.name, file=file).tolist()
        else:
            refs = ids
        if self.score_column is not None:
            mos = numeric_column(table, self.score_column, dataset=self.name, file=file)
        else:
            mos = np.full(len(table), np.nan)
        return pd.DataFrame({"image_id": ids, "ref_id": refs, "mos": mos, "path": paths})

    def _resolve(self, written: list[str], rows: list[int], file: str) -> list[str]:
        """Full URIs for the table's paths; every missing image reported in one error."""
        full = []
        for p in written:
            if storage.is_s3(p) or p.startswith("/") or p.startswith("file://"):
                full.append(p[len("file://") :] if p.startswith("file://") else p)
            else:
                # Normalised, so that "../other/x.jpg" names the file it points to (local
                # paths and S3 keys alike) instead of a path no listing holds.
                full.append(_normalised_join(self.root, p))
        # One listing covers everything under the table's folder; the rest (absolute paths
        # elsewhere) are checked one by one, in parallel because each is a round trip on S3.
        prefix = self.root.rstrip("/") + "/"
        listing = ImageListing.of(self.root, dataset=self.name)
        found: list[str | None] = [None] * len(full)
        outside = []
        for i, uri in enumerate(full):
            if uri.startswith(prefix):
                found[i] = listing.lookup(uri[len(prefix) :])
            else:
                outside.append(i)
        if outside:
            with ThreadPoolExecutor(max_workers=16) as pool:
                present = list(pool.map(lambda i: storage.is_file(full[i]), outside))
            for i, ok in zip(outside, present, strict=True):
                found[i] = full[i] if ok else None
        missing = [(written[i], rows[i], None) for i, uri in enumerate(found) if uri is None]
        if missing:
            raise missing_images_error(
                missing,
                folder=self.root,
                dataset=self.name,
                index_file=file,
                n_listed=len(listing),
            )
        return [uri for uri in found if uri is not None]
