"""Reference-grouped 80/20 splits: disjoint, seeded, repeatable, 5 distinct repeats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dgqa_ray.data.splits import paper_splits, split_by_reference


def _kadid_like(refs: int = 20, per_ref: int = 6) -> pd.DataFrame:
    rows = [
        {"image_id": f"I{r:02d}_{k:02d}", "ref_id": f"I{r:02d}"}
        for r in range(refs)
        for k in range(per_ref)
    ]
    return pd.DataFrame(rows)


def test_no_reference_on_both_sides_and_80_percent_train():
    frame = _kadid_like()
    split = split_by_reference(frame, seed=3)
    assert not split.train_refs & split.test_refs
    assert split.train_refs | split.test_refs == set(frame["ref_id"])
    assert len(split.train_refs) == 16 and len(split.test_refs) == 4
    assert split.train_mask.sum() == 16 * 6 and (split.train_mask ^ split.test_mask).all()
    train_refs_of_rows = set(frame.loc[split.train_mask, "ref_id"])
    test_refs_of_rows = set(frame.loc[split.test_mask, "ref_id"])
    assert train_refs_of_rows == split.train_refs and test_refs_of_rows == split.test_refs


def test_seeded_repeatable_and_independent_of_row_order():
    frame = _kadid_like()
    a = split_by_reference(frame["ref_id"], seed=5, repeat=2)
    b = split_by_reference(frame.sample(frac=1.0, random_state=0)["ref_id"], seed=5, repeat=2)
    assert a.train_refs == b.train_refs
    assert split_by_reference(frame, seed=6, repeat=2).train_refs != a.train_refs


def test_paper_splits_are_five_different_repeats():
    frame = _kadid_like(refs=81, per_ref=2)  # KADID-10k has 81 references
    splits = paper_splits(frame, n=5, seed=0)
    assert [s.repeat for s in splits] == [0, 1, 2, 3, 4]
    assert len({s.test_refs for s in splits}) == 5
    for s in splits:
        assert len(s.train_refs) == 65 and len(s.test_refs) == 16  # round(0.8 * 81)
        assert not s.train_refs & s.test_refs
    assert [s.test_refs for s in paper_splits(frame, n=5, seed=0)] == [s.test_refs for s in splits]


def test_authentic_dataset_splits_per_image_and_tiny_sets_keep_both_sides():
    ids = [f"img{i}" for i in range(10)]
    split = split_by_reference(np.array(ids), train_fraction=0.7, seed=1)
    assert len(split.train_refs) == 7 and len(split.test_refs) == 3
    tiny = split_by_reference(["a", "b"], train_fraction=0.9)
    assert len(tiny.train_refs) == 1 and len(tiny.test_refs) == 1


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="train_fraction must be in"):
        split_by_reference(["a", "b"], train_fraction=1.0)
    with pytest.raises(ValueError, match="at least 2 distinct ref_id"):
        split_by_reference(["a", "a"])
    with pytest.raises(ValueError, match="'ref_id' column"):
        split_by_reference(pd.DataFrame({"x": [1, 2]}))
    with pytest.raises(ValueError, match="ref_id is missing at row 1"):
        split_by_reference(pd.Series(["a", None, "b"]))
    with pytest.raises(ValueError, match="n must be >= 1"):
        paper_splits(["a", "b"], n=0)
