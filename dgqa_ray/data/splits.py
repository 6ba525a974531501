"""Train/test splits grouped by reference content (``ref_id``), as in the paper.

Distorted versions of one reference photo share its content; putting some of them in training
and others in testing leaks the content and inflates SRCC. So the unit of splitting is the
``ref_id``: every image of a reference lands on the same side. (Authentic datasets give every
image its own ``ref_id``, which makes this an ordinary per-image split.)

The paper reports the median over 5 random 80/20 splits; :func:`paper_splits` gives those 5,
each repeatable from ``(seed, repeat)`` alone, whatever the row order of the input::

    for split in paper_splits(index["ref_id"], n=5, seed=0):
        train_rows = index[split.train_mask]
        test_ds = split.select(ds, "test")          # a Ray Dataset filtered by ref_id
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PAPER_TRAIN_FRACTION = 0.8
PAPER_REPEATS = 5


@dataclass(frozen=True)
class Split:
    """One split: the reference ids on each side and row masks aligned with the input."""

    train_refs: frozenset[str]
    test_refs: frozenset[str]
    train_mask: np.ndarray  # (rows,) bool, aligned with the ref_ids given
    test_mask: np.ndarray  # (rows,) bool, == ~train_mask
    seed: int
    repeat: int

    def refs(self, part: str) -> frozenset[str]:
        if part not in ("train", "test"):
            raise ValueError(f"part must be 'train' or 'test', got {part!r}")
        return self.train_refs if part == "train" else self.test_refs

    def select(self, ds, part: str):
        """``ds`` (a Ray Dataset with a ``ref_id`` column) restricted to one side."""
        from ray.data.expressions import col

        return ds.filter(expr=col("ref_id").is_in(sorted(self.refs(part))))


def _ref_array(ref_ids) -> np.ndarray:
    if isinstance(ref_ids, pd.DataFrame):
        if "ref_id" not in ref_ids.columns:
            raise ValueError(
                f"a DataFrame given to split must have a 'ref_id' column; got {list(ref_ids.columns)}"
            )
        ref_ids = ref_ids["ref_id"]
    values = pd.Series(ref_ids, copy=False)
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ValueError(f"ref_id is missing at row {row}; every row needs a reference id")
    return values.astype(str).to_numpy()


def split_by_reference(
    ref_ids,
    train_fraction: float = PAPER_TRAIN_FRACTION,
    seed: int = 0,
    repeat: int = 0,
) -> Split:
    """Split rows so that no ``ref_id`` is on both sides; ~``train_fraction`` of the refs train.

    ``ref_ids``: a sequence/Series of ids, or a DataFrame with a ``ref_id`` column. The refs are
    sorted before shuffling with ``default_rng([seed, repeat])``, so the result depends only on
    the set of ids, the seed and the repeat. With two or more refs each side gets at least one.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    if seed < 0 or repeat < 0:
        raise ValueError(f"seed and repeat must be >= 0, got seed={seed}, repeat={repeat}")
    refs = _ref_array(ref_ids)
    unique = np.unique(refs)  # sorted
    if len(unique) < 2:
        raise ValueError(
            f"need at least 2 distinct ref_id values to split by reference, got {len(unique)}"
        )
    rng = np.random.default_rng([seed, repeat])
    order = rng.permutation(len(unique))
    n_train = int(round(train_fraction * len(unique)))
    n_train = min(max(n_train, 1), len(unique) - 1)
    train_refs = frozenset(unique[order[:n_train]].tolist())
    test_refs = frozenset(unique[order[n_train:]].tolist())
    train_mask = np.isin(refs, list(train_refs))
    return Split(train_refs, test_refs, train_mask, ~train_mask, seed, repeat)


def paper_splits(
    ref_ids,
    n: int = PAPER_REPEATS,
    seed: int = 0,
    train_fraction: float = PAPER_TRAIN_FRACTION,
) -> list[Split]:
    """The paper's protocol: ``n`` (5) independent 80/20 reference-grouped splits."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [split_by_reference(ref_ids, train_fraction, seed, r) for r in range(n)]
