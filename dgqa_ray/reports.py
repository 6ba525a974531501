"""Tables and plots of a pipeline run: baseline (all types) vs DGQA (selected types).

The paper's protocol (4.1): one regressor per source split, five splits, the *median* target
SRCC/PLCC reported. ``summarize_splits`` turns per-split rows into that table (min and max kept
next to the median: five numbers say little about spread, but more than one); ``paper_numbers``
reads the paper's published tables (``dgqa_ray/reference/paper_table*.csv``, package data) so that a report can
print ours next to theirs where the target matches.

Usage::

    per_split = pd.DataFrame([
        {"variant": "baseline", "split": 0, "srcc": 0.61, "plcc": 0.63, "n_types": 25}, ...])
    table = results_table(per_split, paper=paper_numbers_from_dir(ref_dir, "livec"))
    write_results(table, "dgqa_output/demo")      # results.csv + results.md
    print(markdown_table(table))
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dgqa_ray import storage

VARIANTS = ("baseline", "dgqa")
"""Our two trainings: ``baseline`` on all 25 source types, ``dgqa`` on the selected ones."""

SUMMARY_COLUMNS = (
    "source",
    "variant",
    "n_types",
    "n_splits",
    "srcc",
    "plcc",
    "krcc",
    "srcc_min",
    "srcc_max",
    "plcc_min",
    "plcc_max",
)
"""``srcc``/``plcc``/``krcc`` are medians over splits; ``source`` is ``ours`` or a paper table."""

_PAPER_RESNET50 = "baseline_resnet50"  # Table 5's model name for the paper's plain ResNet-50


# --------------------------------------------------------------------------------------------
# Our results
# --------------------------------------------------------------------------------------------


def summarize_splits(per_split: pd.DataFrame) -> pd.DataFrame:
    """Median (and min/max) SRCC/PLCC/KRCC over splits, one row per variant.

    Args:
        per_split: one row per (variant, split) with ``variant``, ``split``, ``srcc``, ``plcc``,
            and optionally ``krcc`` and ``n_types`` (source types trained on).

    Returns:
        Columns ``SUMMARY_COLUMNS`` (``source`` = ``ours``); baseline first, then dgqa, then
        any other variant in order of appearance.
    """
    required = {"variant", "split", "srcc", "plcc"}
    missing = required - set(per_split.columns)
    if missing:
        raise ValueError(
            f"per_split: missing columns {sorted(missing)}; found {list(per_split.columns)}"
        )
    if per_split.empty:
        raise ValueError("per_split: has no rows")
    duplicated = per_split.duplicated(["variant", "split"])
    if duplicated.any():
        variant, split = per_split.loc[duplicated, ["variant", "split"]].iloc[0]
        raise ValueError(f"per_split: variant {variant!r} split {split} appears more than once")

    rows = []
    order = [v for v in VARIANTS if v in set(per_split["variant"])]
    order += [v for v in dict.fromkeys(per_split["variant"]) if v not in order]
    for variant in order:
        part = per_split[per_split["variant"] == variant]
        n_types = part["n_types"].iloc[0] if "n_types" in part else np.nan
        krcc = part["krcc"] if "krcc" in part else pd.Series([np.nan])
        rows.append(
            {
                "source": "ours",
                "variant": variant,
                "n_types": n_types,
                "n_splits": len(part),
                "srcc": float(part["srcc"].median()),
                "plcc": float(part["plcc"].median()),
                "krcc": float(krcc.median()),
                "srcc_min": float(part["srcc"].min()),
                "srcc_max": float(part["srcc"].max()),
                "plcc_min": float(part["plcc"].min()),
                "plcc_max": float(part["plcc"].max()),
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def results_table(
    per_split: pd.DataFrame, paper: pd.DataFrame | None = None, counterparts_only: bool = True
) -> pd.DataFrame:
    """Our summary, followed by the paper's numbers for the same target when given.

    Args:
        per_split: see ``summarize_splits``.
        paper: rows from ``paper_numbers`` / ``paper_numbers_from_dir`` (may be empty).
        counterparts_only: keep only the paper rows that are like-for-like with ours (its
            ResNet-50 on all types and on the DGDS types); False keeps every method.
    """
    table = summarize_splits(per_split)
    if paper is not None and counterparts_only:
        paper = paper[paper["variant"].notna()]
    if paper is None or paper.empty:
        return table
    extra = pd.DataFrame(
        {
            "source": paper["source"],
            "variant": paper["label"],
            "srcc": paper["srcc"],
            "plcc": paper["plcc"],
        }
    ).reindex(columns=list(SUMMARY_COLUMNS))
    return pd.concat([table, extra], ignore_index=True)


def dgqa_gain(table: pd.DataFrame) -> dict[str, float]:
    """DGQA minus baseline median SRCC and PLCC in our rows (nan if either is missing)."""
    ours = table[table["source"] == "ours"].set_index("variant")
    if not {"baseline", "dgqa"} <= set(ours.index):
        return {"srcc": float("nan"), "plcc": float("nan")}
    return {m: float(ours.loc["dgqa", m] - ours.loc["baseline", m]) for m in ("srcc", "plcc")}


def type_overlap(selected: Iterable[int], reference: Iterable[int]) -> dict[str, list[int]]:
    """How a selection compares with a reference set (the embedded target's mixture types, or
    the paper's Table 2): ``recovered`` (in both), ``missed`` (reference only), ``extra``
    (selected only), each sorted."""
    chosen, wanted = {int(t) for t in selected}, {int(t) for t in reference}
    return {
        "recovered": sorted(chosen & wanted),
        "missed": sorted(wanted - chosen),
        "extra": sorted(chosen - wanted),
    }


def selection_quality(selected: Iterable[int], reference: Iterable[int]) -> dict[str, Any]:
    """``type_overlap`` plus ``precision`` (share of the selected types that are in the
    reference; nan for an empty selection) and ``recall`` (share of the reference recovered)."""
    overlap = type_overlap(selected, reference)
    n_selected = len(overlap["recovered"]) + len(overlap["extra"])
    n_reference = len(overlap["recovered"]) + len(overlap["missed"])
    return {
        **overlap,
        "precision": len(overlap["recovered"]) / n_selected if n_selected else float("nan"),
        "recall": len(overlap["recovered"]) / n_reference if n_reference else float("nan"),
    }


# --------------------------------------------------------------------------------------------
# The paper's numbers
# --------------------------------------------------------------------------------------------


def _key(name: Any) -> str:
    """Dataset keys compare without case, '-' or '_' (``KonIQ-10k`` == ``koniq10k``)."""
    return re.sub(r"[-_\s]", "", str(name).lower())


def target_key(dataset: str, subset: str | None = None) -> str:
    """The name a paper table uses for a target: the subset (``pipal-1``) if any, else the
    dataset (``livec``)."""
    return subset or dataset


def paper_numbers(path: str | Path, target: str) -> pd.DataFrame:
    """The SRCC/PLCC one paper table gives for ``target``.

    Two layouts are read:

    - one column pair per target (``livec_srcc, livec_plcc``; Tables 3, 5, 6): one row per
      method, labelled by the non-metric columns (``baseline_resnet50 / dgds``);
    - one row per target (first column, e.g. ``subtype`` = ``pipal-1``; Table 4), with column
      pairs per variant (``baseline_srcc``, ``dgqa_srcc``).

    Returns:
        Columns ``source`` (``paper <file stem>``), ``label``, ``variant`` (``baseline`` or
        ``dgqa`` where the row is the paper's ResNet-50 counterpart of ours, else missing),
        ``srcc``, ``plcc``. Empty when the table does not cover ``target``.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as e:
        raise ValueError(f"paper table {str(path)!r}: couldn't read it as CSV: {e}") from e
    source = f"paper {path.stem}"
    want = _key(target)
    columns = {_key(c): c for c in table.columns}
    rows: list[dict[str, Any]] = []

    srcc_col, plcc_col = columns.get(f"{want}srcc"), columns.get(f"{want}plcc")
    if srcc_col is not None and plcc_col is not None:
        metric_like = re.compile(r"_(srcc|plcc)$|^gds_types_")
        labels = [c for c in table.columns if not metric_like.search(c)]
        for _, row in table.iterrows():
            if pd.isna(row[srcc_col]) and pd.isna(row[plcc_col]):
                continue
            parts = [str(row[c]) for c in labels if not pd.isna(row[c])]
            rows.append(
                {
                    "source": source,
                    "label": " / ".join(parts),
                    "variant": _paper_variant(parts),
                    "srcc": float(row[srcc_col]),
                    "plcc": float(row[plcc_col]),
                }
            )
    else:
        first = table.columns[0]
        match = table[table[first].map(_key) == want]
        prefixes = sorted(
            {c[: -len("_srcc")] for c in table.columns if c.endswith("_srcc")}
            & {c[: -len("_plcc")] for c in table.columns if c.endswith("_plcc")}
        )
        for _, row in match.iterrows():
            for prefix in prefixes:
                rows.append(
                    {
                        "source": source,
                        "label": f"{row[first]} {prefix}",
                        "variant": prefix if prefix in VARIANTS else None,
                        "srcc": float(row[f"{prefix}_srcc"]),
                        "plcc": float(row[f"{prefix}_plcc"]),
                    }
                )
    return pd.DataFrame(rows, columns=["source", "label", "variant", "srcc", "plcc"])


def _paper_variant(parts: Sequence[str]) -> str | None:
    # Which of our variants a paper row stands for: the DGQA row of Table 3, and Table 5's
    # plain ResNet-50 on all types / on DGDS types. Other methods have no counterpart.
    lowered = [p.lower() for p in parts]
    if lowered == ["dgqa"]:
        return "dgqa"
    if len(lowered) == 2 and lowered[0] == _PAPER_RESNET50:
        return {"all": "baseline", "dgds": "dgqa"}.get(lowered[1])
    return None


def paper_numbers_from_dir(folder: str | Path, target: str) -> pd.DataFrame:
    """``paper_numbers`` of every ``paper_table*.csv`` in ``folder`` with numbers for
    ``target``, concatenated (tables without SRCC/PLCC columns, like Table 2, are skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder: no directory at {str(folder)!r}")
    frames = []
    for path in sorted(folder.glob("paper_table*.csv")):
        header = path.read_text().splitlines()[:1]
        if not header or "srcc" not in header[0]:
            continue
        found = paper_numbers(path, target)
        if not found.empty:
            frames.append(found)
    if not frames:
        return pd.DataFrame(columns=["source", "label", "variant", "srcc", "plcc"])
    return pd.concat(frames, ignore_index=True)


def paper_selected_types(path: str | Path, target: str) -> list[int] | None:
    """The types the paper's DGDS selected for ``target`` (Table 2), or None if not listed."""
    table = pd.read_csv(path)
    for column in ("target", "selected_dist_types"):
        if column not in table.columns:
            raise ValueError(
                f"paper table {str(path)!r}: missing column {column!r}; found {list(table.columns)}"
            )
    match = table[table["target"].map(_key) == _key(target)]
    if match.empty:
        return None
    return [int(t) for t in str(match["selected_dist_types"].iloc[0]).split(";") if t.strip()]


# --------------------------------------------------------------------------------------------
# Markdown and files
# --------------------------------------------------------------------------------------------


def _integral(column: pd.Series) -> bool:
    values = pd.to_numeric(column, errors="coerce").dropna()
    return bool(len(values)) and bool(np.all(np.mod(values, 1) == 0))


def _cell(value: Any, floatfmt: str, integral: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return str(int(value)) if integral else format(float(value), floatfmt)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value).replace("|", "\\|")


def markdown_table(table: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """A GitHub-flavoured markdown table: empty cells for NaN, counts as integers, other
    numbers with ``floatfmt``, numeric columns right-aligned."""
    headers = [str(c) for c in table.columns]
    numeric = [
        pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
        for c in table.columns
    ]
    integral = [n and _integral(table[c]) for n, c in zip(numeric, table.columns, strict=True)]
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---:" if n else "---" for n in numeric) + " |",
    ]
    for row in table.itertuples(index=False):
        cells = [_cell(v, floatfmt, i) for v, i in zip(row, integral, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def selection_markdown(
    selected: Sequence[int],
    names: dict[int, str] | None = None,
    reference: Sequence[int] | None = None,
    reference_label: str = "reference",
) -> str:
    """A short markdown list of the selected types, and how they compare with a reference."""
    if names is None:
        from dgqa_ray.selection import distortion_names

        names = distortion_names()
    lines = [f"Selected {len(selected)} types: " + ", ".join(f"#{t} {names[t]}" for t in selected)]
    if reference is not None:
        overlap = type_overlap(selected, reference)

        def fmt(ids: list[int]) -> str:
            return ", ".join(f"#{t} {names[t]}" for t in ids) or "none"

        lines += [
            f"- recovered from the {reference_label} ({len(overlap['recovered'])} of "
            f"{len(set(reference))}): {fmt(overlap['recovered'])}",
            f"- missed: {fmt(overlap['missed'])}",
            f"- also selected: {fmt(overlap['extra'])}",
        ]
    return "\n".join(lines) + "\n"


def write_results(
    table: pd.DataFrame, out_dir: str | Path, name: str = "results", title: str | None = None
) -> dict[str, str]:
    """Write ``<name>.csv`` and ``<name>.md`` under a local folder or ``s3://`` prefix."""
    base = str(out_dir).rstrip("/")
    paths = {"csv": f"{base}/{name}.csv", "markdown": f"{base}/{name}.md"}
    heading = f"# {title}\n\n" if title else ""
    storage.write_bytes_atomic(paths["csv"], table.to_csv(index=False).encode())
    storage.write_bytes_atomic(paths["markdown"], (heading + markdown_table(table)).encode())
    return paths


def plot_predictions(per_image: pd.DataFrame, title: str = "Target: predicted vs true"):
    """Scatter of predicted vs true scores (``engine.per_image_predictions`` rows), with SRCC
    and PLCC in the title. Returns the matplotlib Figure."""
    from matplotlib.figure import Figure

    from dgqa_ray.metrics import plcc, srcc

    for column in ("predicted", "score"):
        if column not in per_image.columns:
            raise ValueError(f"per_image: missing column {column!r}")
    fig = Figure(figsize=(5.0, 5.0), layout="constrained")
    ax = fig.subplots()
    ax.scatter(per_image["score"], per_image["predicted"], s=10, alpha=0.6)
    ax.set_xlabel("true score")
    ax.set_ylabel("predicted score")
    stats = ""
    if len(per_image) >= 2:
        stats = (
            f" (SRCC {srcc(per_image['predicted'], per_image['score']):.3f}, "
            f"PLCC {plcc(per_image['predicted'], per_image['score']):.3f})"
        )
    ax.set_title(title + stats, fontsize=9)
    return fig


def save_figure(fig, uri: str | Path, dpi: int = 110) -> str:
    """Save a Figure as PNG to a local path or ``s3://`` URI; returns it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    storage.write_bytes_atomic(str(uri), buffer.getvalue())
    return str(uri)


# --------------------------------------------------------------------------------------------
# Selections across targets (the form of the paper's Table 2)
# --------------------------------------------------------------------------------------------


def reference_dir() -> Path:
    """The folder of the paper's tables that ship with the package (``dgqa_ray/reference``)."""
    from importlib import resources

    return Path(str(resources.files("dgqa_ray").joinpath("reference")))


def paper_selections(path: str | Path) -> dict[str, list[int]]:
    """Every target's DGDS selection in the paper's Table 2, as ``{"paper: livec": [...]}``."""
    table = pd.read_csv(path)
    return {
        f"paper: {row.target}": [int(t) for t in str(row.selected_dist_types).split(";") if t]
        for row in table.itertuples(index=False)
    }


def run_selections(output_dir: str | Path) -> dict[str, list[int]]:
    """The selection of every pipeline run under ``<output_dir>/runs`` (its
    ``selection/selection.json``), labelled ``<run>: <target>``, in name order."""
    import json

    import yaml

    found: dict[str, list[int]] = {}
    for path in sorted(Path(output_dir).glob("runs/*/selection/selection.json")):
        run_dir = path.parent.parent
        target = "?"
        config = run_dir / "config.yaml"
        if config.exists():
            data = (yaml.safe_load(config.read_text()) or {}).get("data", {})
            target = data.get("target_subset") or data.get("target_dataset") or "?"
        selected = json.loads(path.read_text()).get("selected", [])
        found[f"{run_dir.name}: {target}"] = [int(t) for t in selected]
    return found


def selection_matrix(selections: dict[str, Sequence[int]], num_types: int = 25) -> pd.DataFrame:
    """One row per labelled selection, one column per KADID type (``#1``..``#25``) holding
    ``x`` where selected, and the count: the layout of the paper's Table 2."""
    rows = []
    for label, selected in selections.items():
        chosen = {int(t) for t in selected}
        bad = sorted(t for t in chosen if not 1 <= t <= num_types)
        if bad:
            raise ValueError(f"selections[{label!r}]: type ids out of 1..{num_types}: {bad}")
        row: dict[str, Any] = {"target": label}
        row.update({f"#{t}": "x" if t in chosen else "" for t in range(1, num_types + 1)})
        row["n"] = len(chosen)
        rows.append(row)
    columns = ["target", *(f"#{t}" for t in range(1, num_types + 1)), "n"]
    return pd.DataFrame(rows, columns=columns)


def selections_across_targets(
    output_dir: str | Path,
    reference_dir: str | Path,
    extra: dict[str, Sequence[int]] | None = None,
    truth: Sequence[int] | None = None,
) -> str:
    """A markdown section: ``extra`` rows, every pipeline run's selection under
    ``output_dir``, the embedded target's true mixture types when given, and the paper's
    Table 2 rows, as one ``selection_matrix``."""
    rows: dict[str, Sequence[int]] = dict(extra or {})
    rows.update(run_selections(output_dir))
    if truth:
        rows["the embedded target's mixture types (truth)"] = list(truth)
    rows.update(paper_selections(Path(reference_dir) / "paper_table2_selected_domains.csv"))
    return "## Selections across targets (the form of the paper's Table 2)\n\n" + markdown_table(
        selection_matrix(rows)
    )
