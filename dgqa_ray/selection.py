"""Distortion-guided domain selection (DGDS): which source distortion types look like the target.

The domain classifier F_D gives, for each target image j (5 crops averaged), a probability
p_j^i per class. From those:

- ``similarity_by_domain`` builds the per-type table: the mean probability over target images
  (paper eq. 5), and how often each type is among an image's top-k classes (the authors' code).
- ``select_domains`` applies one rule to it:

  ``mean_prob`` (the paper, eq. 6, the default)
      keep type i when sim_i = mean_j p_j^i > tau; tau None means 1/25: above the uniform share
      over the k = 25 source types (the paper's "tau = 1/k", k the number of source domains).
  ``topk_vote`` (the authors' ``sel_dist.py``)
      per image, the top-k classes (k = 4) of the 5-crop-averaged classifier *outputs* (logits:
      their model has no softmax); count each class over the N images; keep class i when
      round(count_i / (N x 3), 2) >= 0.04. The denominator uses 3 (``ntop - 1``) although 4
      classes are counted per image, so the shares sum to 4/3, not 1; and the share is rounded
      to 2 decimals before the comparison. Both are kept (``vote_denominator=3``,
      ``share_decimals=2``) to reproduce their selections; set them to 4 and None for the
      plain reading.

With the authors' 26-class classifier (class 0 = pristine, 1..25 = types), class 0 is in the
softmax and may take top-k votes, but it is not a source domain and is never selected. For
``mean_prob``, ``similarity`` renormalises the 25 types' mean probabilities to sum to 1 (sim_i
/ sum of the 25), so that tau = 1/25 still means "above uniform over the 25 types"; with 25
classes ``similarity`` equals ``mean_prob``. The raw ``mean_prob`` of every class, pristine
included, is kept in the table.

Nothing here imports Ray or MLflow: the Ray layer runs F_D over the target as a batch inference
and hands the per-crop outputs to ``aggregate_crops``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dgqa_ray import storage
from dgqa_ray.config import NUM_KADID_TYPES, SELECTION_RULES, SelectionConfig

TABLE_COLUMNS = (
    "dist_type",
    "name",
    "source_domain",
    "mean_prob",
    "similarity",
    "votes",
    "n_images",
    "top_k",
)
"""Columns of a similarity table (``votes``: images with the type in their top ``top_k``)."""

TABLE_FILE = "similarity.csv"
SELECTION_FILE = "selection.json"
CHART_FILE = "similarity.png"


# --------------------------------------------------------------------------------------------
# Names of the types
# --------------------------------------------------------------------------------------------


@cache
def distortion_names() -> dict[int, str]:
    """KADID id -> name (0 -> ``pristine``), from the registry or, failing that, its CSV."""
    names = {0: "pristine"}
    try:
        from dgqa_ray.distortions import get_distortion
    except ImportError:
        path = Path(__file__).parent / "distortions" / "kadid_distortions.csv"
        with path.open(newline="") as f:
            names.update({int(row["dist_type"]): row["name"] for row in csv.DictReader(f)})
    else:
        names.update({i: get_distortion(i).name for i in range(1, NUM_KADID_TYPES + 1)})
    return names


def _check_class_ids(class_ids: Any, num_columns: int) -> np.ndarray:
    ids = np.asarray(class_ids)
    if ids.ndim != 1 or ids.size != num_columns:
        raise ValueError(
            f"class_ids: expected one KADID id per probability column ({num_columns}), "
            f"got shape {ids.shape}"
        )
    if ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() > NUM_KADID_TYPES:
        raise ValueError(
            f"class_ids: expected integers in 0..{NUM_KADID_TYPES}, got {ids.tolist()}"
        )
    if len(set(ids.tolist())) != ids.size:
        raise ValueError(f"class_ids: duplicates in {ids.tolist()}")
    return ids.astype(np.int64)


# --------------------------------------------------------------------------------------------
# From classifier outputs to the similarity table
# --------------------------------------------------------------------------------------------


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax in float64 (``scipy.special.softmax``, numerically stable)."""
    from scipy.special import softmax as _softmax

    return _softmax(np.asarray(logits, dtype=np.float64), axis=axis)


def aggregate_crops(ids: Any, crop_logits: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image probabilities and logits from per-crop classifier logits.

    Args:
        ids: (N_crops,) image id of each crop.
        crop_logits: (N_crops, C) raw classifier outputs.

    Returns:
        ``(image_ids (M,), probabilities (M, C), logits (M, C))``: probabilities are the mean of
        the crops' softmax (p_j of paper eq. 4); logits the mean of the crops' raw outputs, which
        is what the authors' ``sel_dist.py`` ranks for its top-k votes.
    """
    from dgqa_ray.engine import average_by_image  # engine pulls in torch; only needed here

    crop_logits = np.asarray(crop_logits, dtype=np.float64)
    if crop_logits.ndim != 2:
        raise ValueError(f"crop_logits: expected (N_crops, C), got shape {crop_logits.shape}")
    image_ids, probabilities = average_by_image(ids, softmax(crop_logits, axis=1))
    _, logits = average_by_image(ids, crop_logits)
    return image_ids, probabilities, logits


def top_k_votes(scores: np.ndarray, k: int) -> np.ndarray:
    """(C,) how many rows have each column among their ``k`` largest (ties: lower index first)."""
    scores = np.asarray(scores, dtype=np.float64)
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k: expected 1..{scores.shape[1]} (the number of classes), got {k!r}")
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (N, k)
    return np.bincount(top.reshape(-1), minlength=scores.shape[1])


def similarity_by_domain(
    probabilities: Any,
    class_ids: Sequence[int] | np.ndarray,
    *,
    logits: Any = None,
    k: int = 4,
) -> pd.DataFrame:
    """The per-type similarity table of the target (one row per classifier output).

    Args:
        probabilities: (N, C) per-image class probabilities (crops averaged), rows summing to 1.
        class_ids: (C,) KADID id of each column (``models.class_dist_types``): 1..25, or 0..25
            with the pristine class.
        logits: (N, C) per-image mean raw outputs; when given, the top-k votes rank these, as
            the authors' code does; otherwise the probabilities.
        k: classes counted per image for ``votes``.

    Returns:
        One row per class, ordered by ``dist_type``, with the columns in ``TABLE_COLUMNS``:
        ``mean_prob`` (paper eq. 5), ``similarity`` (mean_prob renormalised over the source
        types), ``votes``, and the constants ``n_images`` and ``top_k``.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] < 1:
        raise ValueError(f"probabilities: expected (N, C) with N >= 1, got shape {probs.shape}")
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("probabilities: expected finite, non-negative values")
    row_sums = probs.sum(axis=1)
    if not np.allclose(row_sums, 1.0, atol=1e-3):
        worst = int(np.argmax(np.abs(row_sums - 1.0)))
        raise ValueError(
            f"probabilities: rows must sum to 1 (softmax outputs); row {worst} sums to "
            f"{row_sums[worst]:.4f}. Pass raw outputs as logits=, and softmax(...) here"
        )
    ids = _check_class_ids(class_ids, probs.shape[1])
    if logits is not None:
        vote_scores = np.asarray(logits, dtype=np.float64)
        if vote_scores.shape != probs.shape:
            raise ValueError(
                f"logits: expected the shape of probabilities {probs.shape}, got "
                f"{vote_scores.shape}"
            )
    else:
        vote_scores = probs

    mean_prob = probs.mean(axis=0)  # (C,) paper eq. 5
    is_source = ids > 0
    source_total = mean_prob[is_source].sum()
    similarity = np.where(is_source, mean_prob / source_total if source_total > 0 else 0.0, np.nan)
    names = distortion_names()
    table = pd.DataFrame(
        {
            "dist_type": ids,
            "name": [names[int(i)] for i in ids],
            "source_domain": is_source,
            "mean_prob": mean_prob,
            "similarity": similarity,
            "votes": top_k_votes(vote_scores, k).astype(np.int64),
            "n_images": probs.shape[0],
            "top_k": k,
        }
    )
    return table.sort_values("dist_type", kind="stable").reset_index(drop=True)


def read_similarity_table(path_or_buffer: Any) -> pd.DataFrame:
    """A table written by ``write_selection`` (extra columns are dropped)."""
    table = pd.read_csv(path_or_buffer)
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"similarity table {path_or_buffer!r}: missing columns {missing}; found "
            f"{list(table.columns)}"
        )
    table = table[list(TABLE_COLUMNS)].copy()
    table["source_domain"] = table["source_domain"].astype(bool)
    return table


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelectionResult:
    """The selected source types and how they were chosen."""

    selected: tuple[int, ...]
    """KADID ids kept, ascending."""
    rule: str
    params: Mapping[str, Any] = field(default_factory=dict)
    """The rule's parameters as applied (tau resolved from None, k, share, ...)."""
    measure: str = "similarity"
    """Table quantity the rule thresholds (``similarity`` or ``vote_share``)."""
    values: Mapping[int, float] = field(default_factory=dict)
    """That quantity per source type (what the chart shows)."""
    n_images: int = 0

    @property
    def names(self) -> list[str]:
        names = distortion_names()
        return [names[i] for i in self.selected]

    @property
    def threshold(self) -> float:
        return float(self.params["tau"] if self.rule == "mean_prob" else self.params["share"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ids, names, rule, parameters, count, per-type values."""
        return {
            "selected": list(self.selected),
            "names": self.names,
            "n_selected": len(self.selected),
            "rule": self.rule,
            "params": dict(self.params),
            "measure": self.measure,
            "threshold": self.threshold,
            "n_images": self.n_images,
            "values": {str(k): v for k, v in self.values.items()},
        }


def _check_table(table: pd.DataFrame) -> None:
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"similarity_table: missing columns {missing}; expected the output of "
            "similarity_by_domain"
        )
    if table.empty:
        raise ValueError("similarity_table: has no rows")


def select_domains(
    similarity_table: pd.DataFrame,
    rule: str = "mean_prob",
    tau: float | None = None,
    k: int = 4,
    share: float = 0.04,
    vote_denominator: float = 3,
    share_decimals: int | None = 2,
) -> SelectionResult:
    """Apply one selection rule to a ``similarity_by_domain`` table.

    Args:
        similarity_table: per-class table (pristine row, if any, is never selected).
        rule: ``mean_prob`` (paper eq. 6) or ``topk_vote`` (authors' code); see the module doc.
        tau: mean_prob threshold on ``similarity`` (strict >); None: 1 / number of source types
            (1/25).
        k: topk_vote: must equal the k the table's votes were counted with.
        share: topk_vote: minimum share, compared with >=.
        vote_denominator: topk_vote: shares are votes / (n_images x this); 3 in the authors'
            code although 4 are counted.
        share_decimals: topk_vote: round the share to this many decimals before comparing (2
            in the authors' code); None: no rounding.
    """
    _check_table(similarity_table)
    if rule not in SELECTION_RULES:
        raise ValueError(f"rule: invalid value {rule!r}; allowed: {', '.join(SELECTION_RULES)}")
    sources = similarity_table[similarity_table["source_domain"].astype(bool)]
    types = sources["dist_type"].astype(int).to_numpy()
    n_images = int(similarity_table["n_images"].iloc[0])

    if rule == "mean_prob":
        resolved = 1.0 / len(types) if tau is None else float(tau)
        if not 0.0 < resolved < 1.0:
            raise ValueError(f"tau: expected 0 < tau < 1 or None, got {tau!r}")
        values = sources["similarity"].to_numpy(dtype=np.float64)
        keep = values > resolved  # paper eq. 6: strictly above
        params: dict[str, Any] = {
            "tau": resolved,
            "tau_is_default": tau is None,
            "n_types": len(types),
        }
        measure = "similarity"
    else:
        table_k = int(similarity_table["top_k"].iloc[0])
        if k != table_k:
            raise ValueError(
                f"k: the table counted top-{table_k} votes but k={k}; recompute the table with "
                f"similarity_by_domain(..., k={k})"
            )
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share: expected 0 < share <= 1, got {share!r}")
        if vote_denominator <= 0:
            raise ValueError(f"vote_denominator: expected > 0, got {vote_denominator!r}")
        raw = sources["votes"].to_numpy(dtype=np.float64) / (n_images * vote_denominator)
        if share_decimals is None:
            values = raw
        else:
            # Python's round(), as sel_dist.py: correctly rounded from the decimal value.
            values = np.array([round(float(v), share_decimals) for v in raw])
        keep = values >= share
        params = {
            "k": k,
            "share": float(share),
            "vote_denominator": vote_denominator,
            "share_decimals": share_decimals,
        }
        measure = "vote_share"
    return SelectionResult(
        selected=tuple(sorted(int(t) for t in types[keep])),
        rule=rule,
        params=params,
        measure=measure,
        values={int(t): float(v) for t, v in zip(types, values, strict=True)},
        n_images=n_images,
    )


def select_with_config(similarity_table: pd.DataFrame, cfg: SelectionConfig) -> SelectionResult:
    """``select_domains`` with the parameters of the ``selection`` config section."""
    return select_domains(
        similarity_table,
        rule=cfg.rule,
        tau=cfg.tau,
        k=cfg.k,
        share=cfg.share,
        vote_denominator=cfg.vote_denominator,
        share_decimals=cfg.share_decimals,
    )


# --------------------------------------------------------------------------------------------
# Outputs: table (CSV), selected set (JSON), chart (PNG)
# --------------------------------------------------------------------------------------------


def selection_table(result: SelectionResult, table: pd.DataFrame) -> pd.DataFrame:
    """The similarity table plus ``vote_share`` (with the result's denominator if topk_vote,
    else the authors' 3) and ``selected``."""
    _check_table(table)
    out = table.copy()
    denominator = result.params.get("vote_denominator", 3)
    out["vote_share"] = out["votes"] / (out["n_images"] * denominator)
    out["selected"] = out["dist_type"].isin(result.selected)
    return out


def plot_similarity(result: SelectionResult, table: pd.DataFrame, title: str | None = None):
    """A bar chart per type: similarity (tau drawn) and vote share (share drawn); the rule
    used is on top, the selected bars are highlighted. Returns the matplotlib Figure."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    full = selection_table(result, table)
    sources = full[full["source_domain"]].reset_index(drop=True)
    labels = [f"#{t} {n}" for t, n in zip(sources["dist_type"], sources["name"], strict=True)]
    x = np.arange(len(sources))
    colors = np.where(sources["selected"], "tab:orange", "tab:gray")
    top_k = int(full["top_k"].iloc[0])
    # rule -> (column, y label, threshold name, threshold); the rule used goes on top. The tau
    # line is drawn for topk_vote too (at 1/25) as a reference; a share line only when used.
    panels = {
        "mean_prob": (
            "similarity",
            "similarity (eq. 5)",
            "tau",
            result.params.get("tau", 1.0 / len(sources)),
        ),
        "topk_vote": (
            "vote_share",
            f"top-{top_k} vote share",
            "share",
            result.params.get("share"),
        ),
    }
    order = [result.rule] + [r for r in panels if r != result.rule]

    fig = Figure(figsize=(max(8.0, 0.42 * len(sources) + 2.0), 7.5), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    for ax, rule in zip(axes, order, strict=True):
        column, ylabel, name, threshold = panels[rule]
        ax.bar(x, sources[column], color=colors)
        if threshold is not None:
            ax.axhline(
                threshold,
                color="tab:red",
                linestyle="--",
                linewidth=1.2,
                label=f"{name} = {threshold:.3g}",
            )
            ax.legend(loc="upper right", framealpha=0.9)
        used = " (rule used)" if rule == result.rule else ""
        ax.set_ylabel(ylabel + used)
    axes[1].set_xticks(x, labels, rotation=75, ha="right", fontsize=8)
    heading = title or "Distortion-guided domain selection"
    fig.suptitle(
        f"{heading}: {len(result.selected)} of {len(sources)} types selected by "
        f"{result.rule} over {result.n_images} target images (orange)"
    )
    return fig


def write_selection(
    result: SelectionResult, table: pd.DataFrame, out_dir: str | Path, title: str | None = None
) -> dict[str, str]:
    """Write ``similarity.csv``, ``selection.json`` and ``similarity.png`` under ``out_dir``
    (a local folder or an ``s3://`` prefix). Returns ``{"table", "selection", "chart"}`` paths.
    """
    base = str(out_dir).rstrip("/")
    paths = {
        "table": f"{base}/{TABLE_FILE}",
        "selection": f"{base}/{SELECTION_FILE}",
        "chart": f"{base}/{CHART_FILE}",
    }
    storage.write_bytes_atomic(
        paths["table"], selection_table(result, table).to_csv(index=False).encode()
    )
    storage.write_bytes_atomic(
        paths["selection"], (json.dumps(result.to_dict(), indent=2) + "\n").encode()
    )
    buffer = io.BytesIO()
    plot_similarity(result, table, title).savefig(buffer, format="png", dpi=110)
    storage.write_bytes_atomic(paths["chart"], buffer.getvalue())
    return paths
