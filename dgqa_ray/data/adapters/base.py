"""The adapter protocol and the checks every adapter shares.

An adapter reads one dataset's own on-disk layout (label file + image folders, local or
``s3://``) and returns its *index*: one row per image with exactly ``schema.INDEX_COLUMNS``::

    image_id    str      unique within the dataset (file stem for most datasets)
    dataset     str      the adapter's ``name`` ("kadid10k", "livec", ...)
    ref_id      str      content id, what splits group by (the reference image's stem, or the
                         image's own id for authentic photos)
    dist_type   Int16    0 pristine, 1..25 KADID type, <NA> when not a KADID-style distortion
    dist_level  Int16    1..5, <NA> when not synthetic
    subset      string   e.g. the PIPAL sub-type; <NA> when the dataset has none
    mos         float64  the score as published (scale per dataset); NaN if unlabelled
    score       float64  ``mos`` min-max normalised to [0, 10], higher = better; NaN if unlabelled
    path        str      full location of the encoded image (absolute local path or s3:// URI)

Everything is validated up front, before a single image is decoded, because a typo in a label
file should cost seconds, not an hour-long ingestion job: a missing index file, a missing or
misnamed column, a score that is not a number, images the index lists but the folders lack and an
empty dataset all raise :class:`~dgqa_ray.data.errors.DatasetError` naming the dataset, the file
and the row. Whether each image *decodes* is checked later, by ingestion.

Image folders are listed once (``storage.list_files``) and the index is checked against that
listing, instead of one ``exists`` call per image: on S3 that is a few hundred LIST requests for
KADIS-700k rather than 700,000 HEAD requests.
"""

from __future__ import annotations

import difflib
import io
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dgqa_ray import storage

from ..errors import DatasetError
from ..schema import INDEX_COLUMNS

# Suffixes of the encoded images the datasets ship (compared case-insensitively).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# How many missing names an error message spells out before it only gives the count.
_MAX_LISTED = 5


class Adapter(ABC):
    """Reads one dataset's published layout into the common index (see the module docstring).

    Subclasses set the class attributes below and implement :meth:`_read`; :meth:`index` adds
    the ``dataset`` and ``score`` columns and runs the checks every dataset shares.
    """

    # Class-level settings (instance-level for the custom adapter, where the user sets them).
    name: str  # the value of the `dataset` column, and the key in ADAPTERS
    index_file: str  # label file, relative to the root (for messages and docs)
    scale: str  # the published score scale, in words (for docs)
    higher_is_better: bool = True  # False: the score is flipped when normalised
    labelled: bool = True  # False: mos/score are null for every row (KADIS)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        if isinstance(root, os.PathLike):
            root = os.fspath(root)
        if not isinstance(root, str) or not root.strip():
            raise ValueError(f"root must be a local path or an s3:// URI, got {root!r}")
        self.root = normalise_root(root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={self.root!r})"

    # -- the protocol -----------------------------------------------------------------------

    def index(self) -> pd.DataFrame:
        """The validated index: ``schema.INDEX_COLUMNS``, one row per image, in the index
        file's order (images found by listing, like KADIS's generated ones, sorted by name).
        Read once per adapter (a job validates it before starting Ray, ingestion uses it)."""
        cached = getattr(self, "_index_cache", None)
        if cached is None:
            cached = finalise_index(
                self._read(),
                dataset=self.name,
                file=self.uri(self.index_file),
                higher_is_better=self.higher_is_better,
            )
            self._index_cache = cached
        return cached.copy()

    @abstractmethod
    def _read(self) -> pd.DataFrame:
        """Rows with columns image_id, ref_id, mos, path (+ optional dist_type, dist_level,
        subset); images already checked to exist. ``index`` does the rest."""

    # -- helpers for subclasses ---------------------------------------------------------------

    def uri(self, *parts: str) -> str:
        """``root`` joined with ``parts`` (a local path or an s3:// URI, like the root)."""
        return storage.join(self.root, *parts) if parts else self.root

    def error(
        self, message: str, *, file: str | None = None, row: int | None = None
    ) -> DatasetError:
        """A DatasetError for this dataset (returned, so callers write ``raise self.error(...)``)."""
        return DatasetError(message, dataset=self.name, file=file, row=row)

    def read_index_bytes(self, relpath: str, *, what: str = "index file") -> tuple[str, bytes]:
        """(uri, bytes) of a file under the root; a clear error if it is not there."""
        uri = self.uri(relpath)
        try:
            found = storage.exists(uri)
        except OSError as e:  # e.g. S3 access denied: say which file we were after
            raise self.error(f"could not check for the {what}: {e}", file=uri) from e
        if not found:
            raise self.error(
                f"{what} not found; a {self.name} root is expected to contain "
                f"{relpath!r} (see docs/data.md for the layout)",
                file=uri,
            )
        try:
            return uri, storage.read_bytes(uri)
        except OSError as e:
            raise self.error(f"could not read the {what}: {e}", file=uri) from e

    def read_csv(self, relpath: str, required: Sequence[str]) -> tuple[str, pd.DataFrame]:
        """A CSV under the root, every cell as text; adds ``_row`` (the file's line number)."""
        uri, data = self.read_index_bytes(relpath)
        return uri, parse_csv(data, required, dataset=self.name, file=uri)

    def read_excel(self, relpath: str, required: Sequence[str]) -> tuple[str, pd.DataFrame]:
        """The first sheet of an .xlsx under the root; adds ``_row`` (the spreadsheet row)."""
        uri, data = self.read_index_bytes(relpath)
        return uri, parse_excel(data, required, dataset=self.name, file=uri)

    def list_images(self, relfolder: str) -> ImageListing:
        """All image files under ``root/relfolder`` (recursive), listed once."""
        return ImageListing.of(self.uri(relfolder), dataset=self.name)


# -- normalisation --------------------------------------------------------------------------


def normalise_root(root: str) -> str:
    """S3 URIs lose a trailing slash; local paths become absolute so ``path`` works anywhere
    on this machine (Ray workers do not share the driver's working directory)."""
    root = root.strip()
    if storage.is_s3(root):
        return root.rstrip("/")
    if root.startswith("file://"):
        root = root[len("file://") :]
    return os.path.abspath(os.path.expanduser(root))


def minmax_score(mos: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """``mos`` min-max normalised to [0, 10] over its labelled (non-NaN) entries.

    The authors' code min-max normalises labels to [0, 10] within the set used; a published
    scale where lower is better (a true DMOS) is flipped so that 10 is always the best image.
    """
    mos = np.asarray(mos, dtype=np.float64)
    labelled = ~np.isnan(mos)
    score = np.full(mos.shape, np.nan)
    if not labelled.any():
        return score
    low, high = float(mos[labelled].min()), float(mos[labelled].max())
    if high == low:
        raise ValueError(
            f"every labelled score equals {low}: min-max normalisation to [0, 10] needs at "
            "least two different scores"
        )
    unit = (mos[labelled] - low) / (high - low)
    score[labelled] = 10.0 * (unit if higher_is_better else 1.0 - unit)
    return score


def finalise_index(
    rows: pd.DataFrame, *, dataset: str, file: str, higher_is_better: bool
) -> pd.DataFrame:
    """Shared last step: non-empty, unique ids, score column, schema column order and dtypes."""
    if len(rows) == 0:
        raise DatasetError("the dataset has no images (empty index)", dataset=dataset, file=file)
    repeated = rows["image_id"].duplicated(keep=False).to_numpy()
    duplicated = rows["image_id"][repeated].unique().tolist()
    if duplicated:
        first = duplicated[0]
        at = np.flatnonzero((rows["image_id"] == first).to_numpy())
        raise DatasetError(
            f"duplicate image_id: {len(duplicated)} image id(s) appear more than once, e.g. "
            f"{first!r} in rows {', '.join(str(int(i) + 1) for i in at[:5])} (1-based, header "
            "excluded); image ids must be unique within a dataset",
            dataset=dataset,
            file=file,
        )
    out = pd.DataFrame(index=pd.RangeIndex(len(rows)))
    out["image_id"] = rows["image_id"].astype(str).to_numpy()
    out["dataset"] = dataset
    out["ref_id"] = rows["ref_id"].astype(str).to_numpy()
    for column in ("dist_type", "dist_level"):
        values = rows[column].to_numpy() if column in rows else [pd.NA] * len(rows)
        out[column] = pd.array(values, dtype="Int16")
    subset = rows["subset"].to_numpy() if "subset" in rows else [pd.NA] * len(rows)
    out["subset"] = pd.array(subset, dtype="string")
    mos = rows["mos"].to_numpy(dtype=np.float64) if "mos" in rows else np.full(len(rows), np.nan)
    out["mos"] = mos
    try:
        out["score"] = minmax_score(mos, higher_is_better=higher_is_better)
    except ValueError as e:
        raise DatasetError(str(e), dataset=dataset, file=file) from e
    out["path"] = rows["path"].astype(str).to_numpy()
    return out[INDEX_COLUMNS]


# -- table parsing --------------------------------------------------------------------------


def parse_csv(data: bytes, required: Sequence[str], *, dataset: str, file: str) -> pd.DataFrame:
    """CSV bytes -> DataFrame of text cells (NaN for empty) with a ``_row`` line number.

    Cells stay text so an error can quote exactly what the file says ("n/a", "4,5"), and so
    names like ``0001`` keep their leading zeros.
    """
    try:
        df = pd.read_csv(
            io.BytesIO(data),
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            encoding="utf-8-sig",  # tolerate a byte-order mark written by spreadsheet exports
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DatasetError(f"could not parse as CSV: {e}", dataset=dataset, file=file) from e
    df.columns = [str(c).strip() for c in df.columns]
    df["_row"] = np.arange(len(df)) + 2  # line 1 is the header
    df = _drop_blank_rows(df)
    require_columns(df, required, dataset=dataset, file=file)
    return df


def parse_excel(data: bytes, required: Sequence[str], *, dataset: str, file: str) -> pd.DataFrame:
    """First sheet of .xlsx bytes -> DataFrame (cells as Excel typed them) with ``_row``."""
    try:
        # keep_default_na=False: a cell reading "n/a" or "NA" is quoted in the error, not
        # silently turned into a missing score.
        df = pd.read_excel(
            io.BytesIO(data),
            engine="openpyxl",
            sheet_name=0,
            keep_default_na=False,
            na_values=[""],
        )
    except Exception as e:  # openpyxl raises zipfile/KeyError/ValueError for non-xlsx bytes
        raise DatasetError(
            f"could not read as an .xlsx workbook: {type(e).__name__}: {e}",
            dataset=dataset,
            file=file,
        ) from e
    df.columns = [str(c).strip() for c in df.columns]
    df["_row"] = np.arange(len(df)) + 2  # spreadsheet row 1 is the header
    df = _drop_blank_rows(df)
    require_columns(df, required, dataset=dataset, file=file)
    return df


def parse_table(data: bytes, kind: str, *, dataset: str, file: str) -> pd.DataFrame:
    """CSV (text cells) or Parquet (typed cells) bytes -> DataFrame with ``_row``.

    For Parquet, ``_row`` is the 1-based row position (Parquet has no header line).
    """
    if kind == "csv":
        return parse_csv(data, (), dataset=dataset, file=file)
    try:
        df = pd.read_parquet(io.BytesIO(data))
    except Exception as e:  # pyarrow raises ArrowInvalid (a ValueError) and OSError subclasses
        raise DatasetError(
            f"could not read as Parquet: {type(e).__name__}: {e}", dataset=dataset, file=file
        ) from e
    df.columns = [str(c).strip() for c in df.columns]
    df = df.reset_index(drop=True)
    df["_row"] = np.arange(len(df)) + 1
    return df


def _drop_blank_rows(df: pd.DataFrame) -> pd.DataFrame:
    # Blank lines / trailing empty spreadsheet rows are layout, not data.
    data_columns = [c for c in df.columns if c != "_row"]
    blank = df[data_columns].isna().all(axis=1) if data_columns else df["_row"].notna()
    return df.loc[~blank].reset_index(drop=True)


def require_columns(df: pd.DataFrame, required: Iterable[str], *, dataset: str, file: str) -> None:
    """Every required column present, else one error listing found, expected and near misses."""
    found = [c for c in df.columns if c != "_row"]
    missing = [c for c in required if c not in found]
    if not missing:
        return
    hints = []
    for column in missing:
        close = difflib.get_close_matches(column, found, n=1, cutoff=0.6)
        if not close:  # case-insensitive exact match is the commonest misspelling
            close = [c for c in found if c.lower() == column.lower()][:1]
        if close:
            hints.append(f"{column!r} (did you mean {close[0]!r}?)")
        else:
            hints.append(repr(column))
    raise DatasetError(
        f"missing column(s) {', '.join(hints)}; expected columns {list(required)}, found {found}",
        dataset=dataset,
        file=file,
    )


def text_column(df: pd.DataFrame, column: str, *, dataset: str, file: str) -> pd.Series:
    """A required text column, stripped; an empty cell is an error naming its row."""
    values = df[column]
    empty = values.isna() | (values.astype(str).str.strip() == "")
    if empty.any():
        rows = df.loc[empty, "_row"].tolist()
        raise DatasetError(
            f"column {column!r} is empty in {len(rows)} row(s) (rows {_first(rows)})",
            dataset=dataset,
            file=file,
            row=int(rows[0]),
        )
    return values.astype(str).str.strip()


def numeric_column(
    df: pd.DataFrame, column: str, *, dataset: str, file: str, allow_empty: bool = False
) -> np.ndarray:
    """A score column as float64; any cell that is not a finite number is an error that names
    the first bad row and quotes its value (empty cells are NaN when ``allow_empty``)."""
    raw = df[column]
    text = raw.map(lambda v: v.strip() if isinstance(v, str) else v)
    values = np.array(pd.to_numeric(text, errors="coerce"), dtype=np.float64)  # writable copy
    empty = text.isna() | (text.astype(str) == "")
    bad = ~np.isfinite(values)
    if allow_empty:
        bad &= ~empty.to_numpy()
        values[empty.to_numpy()] = np.nan
    if bad.any():
        positions = np.flatnonzero(bad)
        first = positions[0]
        rows = df["_row"].to_numpy()[positions].tolist()
        shown = raw.iloc[first]
        shown = "an empty cell" if pd.isna(shown) or str(shown).strip() == "" else repr(shown)
        raise DatasetError(
            f"column {column!r} must hold numbers, found {shown}"
            + (f" ({len(rows)} bad rows: {_first(rows)})" if len(rows) > 1 else ""),
            dataset=dataset,
            file=file,
            row=int(rows[0]),
        )
    return values


def stem(name: str) -> str:
    """File name without folders and without its last suffix: 'images/I01_01_01.png' -> 'I01_01_01'."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def _first(items: Sequence[Any]) -> str:
    shown = ", ".join(str(i) for i in list(items)[:_MAX_LISTED])
    return shown + (", ..." if len(items) > _MAX_LISTED else "")


# -- image folders --------------------------------------------------------------------------


class ImageListing:
    """The image files under one folder (recursive), for checking an index against.

    Lookups are by path relative to the folder; when the exact spelling is absent a
    case-insensitive match is accepted (``.JPG`` vs ``.jpg`` is a classic of copies made on
    case-insensitive file systems).
    """

    def __init__(self, folder: str, uris: Sequence[str], *, dataset: str) -> None:
        self.folder = folder
        self.dataset = dataset
        prefix = folder.rstrip("/") + "/"
        cut = len(prefix)
        images = [u for u in uris if u.lower().endswith(IMAGE_SUFFIXES)]
        # Listings spell every URI with the folder as prefix; the slow path is for odd spellings.
        self.by_relpath: dict[str, str] = {
            (u[cut:] if u.startswith(prefix) else _relative(u, folder)): u for u in images
        }
        self._lower: dict[str, str] | None = None
        self._basename: dict[str, list[str]] | None = None

    @classmethod
    def of(cls, folder: str, *, dataset: str) -> ImageListing:
        try:
            uris = storage.list_files(folder)
        except FileNotFoundError:
            uris = []
        except OSError as e:
            raise DatasetError(
                f"could not list the image folder: {e}", dataset=dataset, file=folder
            ) from e
        return cls(folder, uris, dataset=dataset)

    def __len__(self) -> int:
        return len(self.by_relpath)

    def lookup(self, relpath: str) -> str | None:
        """Full URI of ``folder/relpath`` (case-insensitive fallback), or None."""
        relpath = relpath.replace("\\", "/").lstrip("/")
        hit = self.by_relpath.get(relpath)
        if hit is None:
            if self._lower is None:
                self._lower = {k.lower(): v for k, v in self.by_relpath.items()}
            hit = self._lower.get(relpath.lower())
        return hit

    def search(self, basename: str, *, index_file: str) -> str | None:
        """Full URI of the one file called ``basename`` anywhere under the folder, or None.

        Two files of that name in different subfolders is an error: picking one silently
        could pair an image with another image's score.
        """
        if self._basename is None:
            self._basename = {}
            for rel, uri in self.by_relpath.items():
                self._basename.setdefault(rel.rsplit("/", 1)[-1].lower(), []).append(uri)
        hits = self._basename.get(basename.lower(), [])
        if len(hits) > 1:
            raise DatasetError(
                f"image {basename!r} is found in {len(hits)} places ({_first(hits)}); "
                "keep one copy",
                dataset=self.dataset,
                file=index_file,
            )
        return hits[0] if hits else None

    def resolve(
        self,
        names: Sequence[str],
        *,
        index_file: str,
        rows: Sequence[int] | None = None,
        sources: Sequence[str] | None = None,
        search_subfolders: bool = False,
    ) -> list[str]:
        """Full URIs for ``names`` (relative to the folder); every missing one in one error.

        ``rows``: each name's row in the index file, for the message; ``sources``: each name's
        index file when the labels are spread over several files (PIPAL), else ``index_file``.
        """
        found: list[str] = []
        missing: list[tuple[str, int | None, str | None]] = []
        for i, name in enumerate(names):
            if search_subfolders:
                basename = name.replace("\\", "/").rsplit("/", 1)[-1]
                uri = self.search(basename, index_file=index_file)
            else:
                uri = self.lookup(name)
            if uri is None:
                row = None if rows is None else int(rows[i])
                missing.append((name, row, None if sources is None else sources[i]))
            found.append(uri or "")
        if missing:
            raise missing_images_error(
                missing,
                folder=self.folder,
                dataset=self.dataset,
                index_file=index_file if sources is None else str(missing[0][2]),
                n_listed=len(self),
            )
        return found


def missing_images_error(
    missing: Sequence[tuple[str, int | None, str | None]],
    *,
    folder: str,
    dataset: str,
    index_file: str,
    n_listed: int,
) -> DatasetError:
    """One error for every listed-but-absent image: the count, the first names and their rows.

    ``missing``: (name, row or None, index file or None when it is ``index_file``) per image.
    """

    def where(row: int | None, source: str | None) -> str:
        parts = ([storage.basename(source)] if source and source != index_file else []) + (
            [f"row {row}"] if row is not None else []
        )
        return f" ({' '.join(parts)})" if parts else ""

    shown = ", ".join(f"{name!r}{where(row, src)}" for name, row, src in missing[:_MAX_LISTED])
    more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
    where = (
        f"the image folder {folder} holds {n_listed} image file(s)"
        if n_listed
        else f"the image folder {folder} is empty or missing"
    )
    return DatasetError(
        f"{len(missing)} image(s) listed in the index are missing: {shown}{more}; {where}",
        dataset=dataset,
        file=index_file,
        row=missing[0][1],
    )


def _relative(uri: str, folder: str) -> str:
    prefix = folder.rstrip("/") + "/"
    if uri.startswith(prefix):
        return uri[len(prefix) :]
    if not storage.is_s3(uri):  # local listing spelled differently (symlinks, ./)
        return os.path.relpath(uri, folder).replace(os.sep, "/")
    return uri.rsplit("/", 1)[-1]
