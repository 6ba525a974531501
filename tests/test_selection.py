"""DGDS: the similarity table, the two selection rules, and their files."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from dgqa_ray.config import SelectionConfig
from dgqa_ray.models import class_dist_types
from dgqa_ray.selection import (
    TABLE_COLUMNS,
    aggregate_crops,
    distortion_names,
    plot_similarity,
    read_similarity_table,
    select_domains,
    select_with_config,
    similarity_by_domain,
    softmax,
    top_k_votes,
    write_selection,
)


def random_logits(n_images=60, num_classes=25, favoured=(1, 3, 10, 17, 18, 25), seed=0):
    """Per-image mean logits where the ``favoured`` KADID types tend to score high."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.0, size=(n_images, num_classes))
    columns = [int(np.flatnonzero(class_dist_types(num_classes) == t)[0]) for t in favoured]
    logits[:, columns] += rng.uniform(0.5, 2.5, size=(n_images, len(columns)))
    return logits


def test_similarity_table_columns_and_values():
    logits = random_logits()
    probs = softmax(logits)
    table = similarity_by_domain(probs, class_dist_types(25), logits=logits, k=4)
    assert tuple(table.columns) == TABLE_COLUMNS
    assert table["dist_type"].tolist() == list(range(1, 26))
    np.testing.assert_allclose(table["mean_prob"], probs.mean(axis=0))  # paper eq. 5
    np.testing.assert_allclose(table["similarity"], table["mean_prob"])  # 25 classes: same
    assert table["votes"].sum() == 60 * 4 and (table["n_images"] == 60).all()
    assert table.loc[0, "name"] == "gaussian_blur" and table.loc[24, "name"] == "contrast_change"
    top4 = np.argsort(-logits, axis=1)[:, :4]
    assert table.loc[9, "votes"] == int((top4 == 9).sum())  # type 10 = column 9


def test_mean_prob_rule_is_paper_eq6():
    probs = np.full((2, 25), 0.9 / 23)
    probs[:, 0] = 0.06  # type 1: above 1/25
    probs[:, 1] = 0.04  # type 2: at 1/25
    table = similarity_by_domain(probs, class_dist_types(25))
    result = select_domains(table)  # tau None -> 1/25
    assert result.rule == "mean_prob" and result.params["tau"] == pytest.approx(0.04)
    assert result.params["tau_is_default"] and result.params["n_types"] == 25
    assert result.selected == (1,)
    # Strictly above: a type whose similarity equals tau is not kept.
    at_tau = float(table.loc[1, "similarity"])
    assert select_domains(table, tau=at_tau).selected == (1,)
    assert select_domains(table, tau=at_tau - 1e-9).selected == (1, 2)
    # A lower explicit tau keeps more types; a high one none.
    assert set(select_domains(table, tau=0.001).selected) == set(range(1, 26))
    assert select_domains(table, tau=0.9).selected == ()


def authors_selection(mean_logits: np.ndarray) -> set[int]:
    """sel_dist.py's loop, restated: top-4 of the averaged outputs, counted, rounded share."""
    preds = torch.tensor(mean_logits)
    ntop = 4
    _, top = preds.topk(ntop, 1, True, True)
    unique, counts = torch.unique(top, return_counts=True)
    all_count = preds.size()[0] * (ntop - 1)
    return {
        int(t)
        for t, c in zip(unique, counts, strict=True)
        if round(c.item() / all_count, 2) >= 0.04
    }


@pytest.mark.parametrize("seed", range(5))
def test_topk_vote_reproduces_the_authors_code(seed):
    # The authors' 26-class model: class index = KADID id, 0 = pristine.
    logits = random_logits(n_images=150, num_classes=26, seed=seed)
    logits[:, 0] += 1.0  # pristine gets votes too
    probs = softmax(logits)
    table = similarity_by_domain(probs, class_dist_types(26), logits=logits, k=4)
    result = select_domains(table, rule="topk_vote", k=4, share=0.04, vote_denominator=3)
    expected = authors_selection(logits)
    # Their script may print class 0 (pristine); it is never a source domain here.
    assert set(result.selected) == expected - {0}
    assert result.measure == "vote_share" and result.params["vote_denominator"] == 3
    # Shares use N x 3 although 4 votes per image are cast: they sum to 4/3 over all classes.
    assert table["votes"].sum() / (150 * 3) == pytest.approx(4 / 3)


def test_topk_vote_rounding_and_denominator():
    # 200 images, type 1 in 21 top-4 lists: 21 / 600 = 0.035, rounded to 0.04 -> kept.
    table = pd.DataFrame(
        {
            "dist_type": range(1, 26),
            "name": [distortion_names()[i] for i in range(1, 26)],
            "source_domain": True,
            "mean_prob": 1 / 25,
            "similarity": 1 / 25,
            "votes": [21] + [0] * 24,
            "n_images": 200,
            "top_k": 4,
        }
    )
    assert select_domains(table, rule="topk_vote").selected == (1,)
    assert select_domains(table, rule="topk_vote", share_decimals=None).selected == ()
    # The plain reading (denominator 4 = votes per image) keeps fewer types.
    assert select_domains(table, rule="topk_vote", vote_denominator=4).selected == ()
    result = select_domains(table, rule="topk_vote", share_decimals=None, share=0.03)
    assert result.selected == (1,) and result.values[1] == pytest.approx(0.035)


def test_pristine_class_is_in_the_softmax_but_never_selected():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(40, 26))
    logits[:, 0] += 3.0  # mostly "pristine"
    logits[:, 5] += 1.5  # type 5 stands out among the types
    probs = softmax(logits)
    table = similarity_by_domain(probs, class_dist_types(26), logits=logits)
    pristine = table[table["dist_type"] == 0].iloc[0]
    assert not pristine["source_domain"] and np.isnan(pristine["similarity"])
    assert pristine["mean_prob"] > 0.3
    types = table[table["source_domain"]]
    # similarity renormalises the 25 types' mean probabilities, so tau = 1/25 keeps its meaning.
    assert types["similarity"].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(
        types["similarity"], types["mean_prob"] / types["mean_prob"].sum(), rtol=1e-12
    )
    for rule in ("mean_prob", "topk_vote"):
        result = select_domains(table, rule=rule)
        assert 0 not in result.selected and 5 in result.selected
    assert 0 not in select_domains(table, tau=1e-6).selected


def test_aggregate_crops():
    ids = np.array(["a", "a", "b", "b", "b"])
    crop_logits = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [1.0, 0.0], [4.0, 0.0]])
    image_ids, probs, logits = aggregate_crops(ids, crop_logits)
    assert image_ids.tolist() == ["a", "b"]
    np.testing.assert_allclose(logits, [[1.0, 1.0], [2.0, 0.0]])
    expected_a = (softmax(crop_logits[0]) + softmax(crop_logits[1])) / 2
    np.testing.assert_allclose(probs[0], expected_a)  # mean of softmax, not softmax of mean
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_top_k_votes_ties_prefer_lower_index():
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert top_k_votes(scores, 1).tolist() == [2, 0, 0]
    with pytest.raises(ValueError, match=r"k: expected 1\.\.3"):
        top_k_votes(scores, 4)


def test_input_errors():
    probs = softmax(random_logits(n_images=5))
    with pytest.raises(ValueError, match="rows must sum to 1"):
        similarity_by_domain(np.abs(random_logits(n_images=5)), class_dist_types(25))
    with pytest.raises(
        ValueError, match=r"class_ids: expected one KADID id per probability column \(25\)"
    ):
        similarity_by_domain(probs, class_dist_types(26))
    with pytest.raises(ValueError, match="class_ids: duplicates"):
        similarity_by_domain(probs, [1] * 25)
    with pytest.raises(ValueError, match=r"expected \(N, C\)"):
        similarity_by_domain(probs[0], class_dist_types(25))
    with pytest.raises(ValueError, match="logits: expected the shape"):
        similarity_by_domain(probs, class_dist_types(25), logits=np.zeros((5, 3)))
    table = similarity_by_domain(probs, class_dist_types(25), k=4)
    with pytest.raises(
        ValueError, match="rule: invalid value 'best'; allowed: mean_prob, topk_vote"
    ):
        select_domains(table, rule="best")
    with pytest.raises(ValueError, match=r"the table counted top-4 votes but k=3"):
        select_domains(table, rule="topk_vote", k=3)
    with pytest.raises(ValueError, match=r"missing columns \['votes'"):
        select_domains(table.drop(columns=["votes"]))


def test_select_with_config():
    table = similarity_by_domain(softmax(random_logits()), class_dist_types(25))
    for cfg in (SelectionConfig(), SelectionConfig(rule="topk_vote"), SelectionConfig(tau=0.03)):
        via_cfg = select_with_config(table, cfg)
        direct = select_domains(
            table,
            rule=cfg.rule,
            tau=cfg.tau,
            k=cfg.k,
            share=cfg.share,
            vote_denominator=cfg.vote_denominator,
            share_decimals=cfg.share_decimals,
        )
        assert via_cfg == direct


def test_favoured_types_are_selected():
    favoured = (1, 3, 10, 17, 18, 25)
    logits = random_logits(n_images=200, favoured=favoured)
    table = similarity_by_domain(softmax(logits), class_dist_types(25), logits=logits)
    assert select_domains(table).selected == favoured
    assert select_domains(table, rule="topk_vote").selected == favoured


def test_write_selection_files(tmp_path):
    logits = random_logits()
    table = similarity_by_domain(softmax(logits), class_dist_types(25), logits=logits)
    result = select_domains(table)
    paths = write_selection(result, table, tmp_path / "sel", title="LIVEC")
    assert set(paths) == {"table", "selection", "chart"}

    written = pd.read_csv(paths["table"])
    assert written["selected"].sum() == len(result.selected)
    assert "vote_share" in written.columns
    pd.testing.assert_frame_equal(read_similarity_table(paths["table"]), table, check_dtype=False)

    saved = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert saved["selected"] == list(result.selected)
    assert saved["names"] == [distortion_names()[t] for t in result.selected]
    assert saved["rule"] == "mean_prob" and saved["threshold"] == pytest.approx(0.04)
    assert saved["n_selected"] == len(result.selected) and saved["n_images"] == 60

    png = (tmp_path / "sel" / "similarity.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_chart_draws_tau_and_highlights_selection():
    logits = random_logits()
    table = similarity_by_domain(softmax(logits), class_dist_types(25), logits=logits)
    result = select_domains(table, tau=0.05)
    fig = plot_similarity(result, table)
    top = fig.axes[0]  # the rule used
    assert "rule used" in top.get_ylabel()
    assert np.allclose(top.lines[0].get_ydata(), 0.05)  # tau line
    orange = [i + 1 for i, bar in enumerate(top.patches) if bar.get_facecolor()[0] > 0.9]
    assert tuple(orange) == result.selected
    vote_result = select_domains(table, rule="topk_vote")
    fig = plot_similarity(vote_result, table)
    assert "vote share" in fig.axes[0].get_ylabel()
    assert np.allclose(fig.axes[0].lines[0].get_ydata(), 0.04)


def test_names_fall_back_to_the_packaged_csv(monkeypatch):
    from_registry = distortion_names()
    distortion_names.cache_clear()
    monkeypatch.setitem(sys.modules, "dgqa_ray.distortions", None)  # import now fails
    try:
        assert distortion_names() == from_registry
    finally:
        distortion_names.cache_clear()
    assert from_registry[0] == "pristine" and len(from_registry) == 26


@pytest.mark.slow
def test_write_selection_to_s3(s3_server):
    from dgqa_ray import storage

    table = similarity_by_domain(softmax(random_logits()), class_dist_types(25))
    prefix = s3_server.unique_uri("selection")
    paths = write_selection(select_domains(table), table, prefix)
    assert json.loads(storage.read_text(paths["selection"]))["rule"] == "mean_prob"
    assert storage.read_bytes(paths["chart"])[:4] == b"\x89PNG"
