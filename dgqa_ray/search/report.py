"""What the searches write and print: each search's report, table and plot, and the summary.

``write_sweep`` (the tau sweep: ``trials.csv``, ``srcc_vs_tau.png``, ``report.md``) and
``write_gds`` (greedy domain selection: also ``rounds.csv``, ``srcc_per_round.png``; its report
says that GDS is an oracle) put the paper's numbers for the same target and the selection
matrix (the layout of the paper's Table 2) next to the search's best set. ``search_summary`` is
what the jobs print at the end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dgqa_ray.config import NUM_KADID_TYPES, PipelineConfig
from dgqa_ray.search.results import METRIC, SearchResult, set_of


def _fmt(value: Any) -> str:
    return (
        "nan"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.4f}" if isinstance(value, float) else str(value))
    )


def _paper_section(cfg: PipelineConfig, table_names: Sequence[str]) -> list[str]:
    """The paper's numbers for this target, from the named reference tables."""
    from dgqa_ray import reports

    target = reports.target_key(cfg.data.target_dataset, cfg.data.target_subset)
    frames = []
    for stem in table_names:
        path = reports.reference_dir() / f"{stem}.csv"
        if path.exists():
            found = reports.paper_numbers(path, target)
            if not found.empty:
                frames.append(found)
    if not frames:
        return [f"The paper reports no numbers for the target `{target}`.", ""]
    paper = pd.concat(frames, ignore_index=True)[["source", "label", "srcc", "plcc"]]
    return [f"The paper's numbers for `{target}`:", "", reports.markdown_table(paper), ""]


def _matrix_section(
    cfg: PipelineConfig, extra: Mapping[str, Sequence[int]], truth: Sequence[int] | None = None
) -> list[str]:
    from dgqa_ray import reports

    return [
        reports.selections_across_targets(
            cfg.output_dir, reports.reference_dir(), dict(extra), truth
        ),
        "",
    ]


def _proxy_note(cfg: PipelineConfig) -> list[str]:
    if "embedded" in (cfg.data.source_dataset, cfg.data.target_dataset):
        return [
            "Scores of the embedded default are **full-reference proxies** against the "
            "pristine tiles, not subjective ratings.",
            "",
        ]
    return []


def write_sweep(cfg, prepared, table, best, out_dir: Path, name: str, seconds: float):
    from matplotlib.figure import Figure

    from dgqa_ray import reports

    files = {"table": str(out_dir / "trials.csv")}
    table.to_csv(files["table"], index=False)

    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    mean = table[table["rule"] == "mean_prob"].sort_values("tau")
    ax.plot(mean["tau"], mean[METRIC], "o-", label="mean_prob")
    for _, row in mean.iterrows():
        ax.annotate(str(int(row["n_types"] or 0)), (row["tau"], row[METRIC]), fontsize=7)
    vote = table[table["rule"] == "topk_vote"]
    if not vote.empty and pd.notna(vote[METRIC].iloc[0]):
        ax.axhline(float(vote[METRIC].iloc[0]), ls="--", c="tab:orange", label="topk_vote")
    ax.axvline(1.0 / NUM_KADID_TYPES, ls=":", c="grey", label="tau = 1/25")
    ax.set_xlabel("tau")
    ax.set_ylabel("target SRCC (median over splits)")
    ax.set_title(f"{name}: target SRCC vs tau (labels: types kept)", fontsize=9)
    ax.legend(fontsize=8)
    files["plot"] = reports.save_figure(fig, out_dir / "srcc_vs_tau.png")

    lines = [f"# Tau sweep `{name}`", ""]
    lines += _proxy_note(cfg)
    lines += [
        f"Target `{cfg.data.target_dataset}`, source `{cfg.data.source_dataset}`; "
        f"{cfg.search.splits} split(s) x {cfg.search.epochs or cfg.train.epochs} epoch(s) per "
        f"trial; {len(table)} trials in {seconds:.0f} s. The pipeline's rule "
        f"(`{cfg.selection.rule}`) selected {list(prepared.outcome.selection.selected)}.",
        "",
        "## Trials",
        "",
        reports.markdown_table(table.drop(columns=["round", "added"])),
        "",
    ]
    if best:
        lines += [
            f"Best: `{best['trial']}`, {int(best['n_types'])} types {best['domain_set']}, "
            f"target SRCC {_fmt(best[METRIC])}, PLCC {_fmt(best['target_plcc'])}.",
            "",
        ]
    lines += ["## The paper", ""]
    lines += _paper_section(
        cfg, ["paper_table3_syn_to_authentic", "paper_table5_ablation", "paper_table4_pipal"]
    )
    lines += _matrix_section(
        cfg, {f"{name} best": set_of(best)} if best else {}, prepared.target_types
    )
    files["report"] = str(out_dir / "report.md")
    Path(files["report"]).write_text("\n".join(lines) + "\n")
    return files


def write_gds(cfg, prepared, table, rounds, best, stop, out_dir: Path, name, seconds):
    from matplotlib.figure import Figure

    from dgqa_ray import reports

    files = {"table": str(out_dir / "trials.csv"), "rounds": str(out_dir / "rounds.csv")}
    table.to_csv(files["table"], index=False)
    rounds.to_csv(files["rounds"], index=False)

    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    tried = table[table[METRIC].notna()]
    ax.scatter(tried["round"], tried[METRIC], s=12, alpha=0.5, label="candidates")
    if not rounds.empty:
        ax.plot(rounds["round"], rounds[METRIC], "o-", c="tab:red", label="best of round")
        for _, row in rounds.iterrows():
            if row["added"] is not None and not pd.isna(row["added"]):
                ax.annotate(f"+{int(row['added'])}", (row["round"], row[METRIC]), fontsize=7)
    ax.set_xlabel("round")
    ax.set_ylabel("target SRCC (median over splits)")
    ax.set_title(f"{name}: greedy domain selection (oracle: uses target labels)", fontsize=9)
    ax.legend(fontsize=8)
    files["plot"] = reports.save_figure(fig, out_dir / "srcc_per_round.png")

    lines = [f"# Greedy domain selection `{name}`", ""]
    lines += [
        "**An oracle upper bound, not an unsupervised method:** GDS ranks candidate sets by "
        "SRCC on the target's labels (paper 4.5, Table 6), which an unlabeled target does not "
        "have.",
        "",
    ]
    lines += _proxy_note(cfg)
    lines += [
        f"Start: {cfg.search.gds_start}; candidates {list(cfg.search.resolved_candidates)}; "
        f"{cfg.search.splits} split(s) x {cfg.search.epochs or cfg.train.epochs} epoch(s) per "
        f"trial; {len(table)} trials in {seconds:.0f} s. Stopped: {stop}.",
        "",
        "## Rounds",
        "",
        reports.markdown_table(rounds) if not rounds.empty else "(none)\n",
        "",
    ]
    if best:
        lines += [
            f"Final set: {best['domain_set']} ({int(best['n_types'])} types), target SRCC "
            f"{_fmt(best[METRIC])}, PLCC {_fmt(best['target_plcc'])}; the unsupervised "
            f"selection (`{cfg.selection.rule}`) picked "
            f"{list(prepared.outcome.selection.selected)}.",
            "",
        ]
    lines += ["## All trials", "", reports.markdown_table(table.drop(columns=["rule", "tau"])), ""]
    lines += ["## The paper (Table 6: DGDS vs GDS)", ""]
    lines += _paper_section(cfg, ["paper_table6_gds"])
    lines += _matrix_section(
        cfg, {f"{name} (GDS)": set_of(best)} if best else {}, prepared.target_types
    )
    files["report"] = str(out_dir / "report.md")
    Path(files["report"]).write_text("\n".join(lines) + "\n")
    return files


def search_summary(result: SearchResult) -> str:
    """What ``jobs/tune_tau.py`` and ``jobs/gds_search.py`` print at the end."""
    from dgqa_ray import reports

    shown = result.rounds if result.kind == "gds" else result.table
    lines = ["", reports.markdown_table(shown)]
    if result.best:
        lines.append(
            f"Best: {result.best.get('trial')} -> {result.best.get('domain_set')}, target SRCC "
            f"{_fmt(result.best.get(METRIC))}, PLCC {_fmt(result.best.get('target_plcc'))}"
        )
    if result.kind == "gds":
        lines.append("(GDS uses the target's labels: an oracle upper bound, not DGDS.)")
    lines.append(f"Report: {result.report_path}")
    return "\n".join(lines)
