"""Results tables, the paper's numbers next to ours, markdown and plots."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dgqa_ray.reports import (
    SUMMARY_COLUMNS,
    dgqa_gain,
    markdown_table,
    paper_numbers,
    paper_numbers_from_dir,
    paper_selected_types,
    plot_predictions,
    results_table,
    save_figure,
    selection_markdown,
    summarize_splits,
    target_key,
    type_overlap,
    write_results,
)

REFERENCE = Path(str(resources.files("dgqa_ray").joinpath("reference")))
"""The paper's tables as the package ships them (``pip install`` included)."""


def per_split_rows():
    rows = []
    for split, (b, d) in enumerate(
        [(0.50, 0.61), (0.55, 0.66), (0.40, 0.70), (0.58, 0.59), (0.52, 0.64)]
    ):
        rows.append(
            {
                "variant": "dgqa",
                "split": split,
                "srcc": d,
                "plcc": d + 0.01,
                "krcc": d / 2,
                "n_types": 6,
            }
        )
        rows.append(
            {
                "variant": "baseline",
                "split": split,
                "srcc": b,
                "plcc": b + 0.02,
                "krcc": b / 2,
                "n_types": 25,
            }
        )
    return pd.DataFrame(rows)


def write_reference_tables(folder: Path) -> Path:
    """Copies of the paper tables' layouts (a few rows of Tables 2-5)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "paper_table2_selected_domains.csv").write_text(
        "target,selected_dist_types,n_selected\nlivec,1;3;10;17;18;25,6\npipal-1,1;2;3;9;17;18;25,7\n"
    )
    (folder / "paper_table3_syn_to_authentic.csv").write_text(
        "method,livec_srcc,livec_plcc,koniq10k_srcc,koniq10k_plcc\n"
        "NIQE,0.3044,0.3619,0.4469,0.4600\nDGQA,0.6958,0.6902,0.6810,0.6866\n"
    )
    (folder / "paper_table4_pipal.csv").write_text(
        "subtype,name,baseline_srcc,baseline_plcc,dgqa_srcc,dgqa_plcc\n"
        "pipal-1,traditional_sr,0.4756,0.4536,0.5419,0.5404\n"
    )
    (folder / "paper_table5_ablation.csv").write_text(
        "model,domains,livec_srcc,livec_plcc,koniq10k_srcc,koniq10k_plcc\n"
        "baseline_resnet50,all,0.5646,0.5810,0.6250,0.6127\n"
        "baseline_resnet50,dgds,0.6958,0.6902,0.6810,0.6866\n"
        "hyperiqa,all,0.5633,0.5890,0.6236,0.5869\n"
    )
    (folder / "paper_table6_gds.csv").write_text(
        "training,livec_srcc,livec_plcc,koniq10k_srcc,koniq10k_plcc,gds_types_livec,gds_types_koniq10k\n"
        "gds,0.7134,0.7254,0.7255,0.7275,1;3;9;18;20;25,1;2;9;17;20;25\n"
        "livec,,,0.7074,0.7539,,\n"
    )
    return folder


def test_summarize_splits_medians():
    table = summarize_splits(per_split_rows())
    assert tuple(table.columns) == SUMMARY_COLUMNS
    assert table["variant"].tolist() == ["baseline", "dgqa"]  # baseline first
    base = table.iloc[0]
    assert base["srcc"] == pytest.approx(0.52) and base["plcc"] == pytest.approx(0.54)
    assert base["krcc"] == pytest.approx(0.26)
    assert (base["srcc_min"], base["srcc_max"]) == (0.40, 0.58)
    assert base["n_splits"] == 5 and base["n_types"] == 25 and base["source"] == "ours"
    assert table.iloc[1]["srcc"] == pytest.approx(0.64)
    assert dgqa_gain(table) == pytest.approx({"srcc": 0.12, "plcc": 0.11})


def test_summarize_splits_errors():
    with pytest.raises(ValueError, match=r"missing columns \['plcc'\]"):
        summarize_splits(pd.DataFrame({"variant": ["dgqa"], "split": [0], "srcc": [0.5]}))
    rows = per_split_rows()
    with pytest.raises(ValueError, match="variant 'dgqa' split 0 appears more than once"):
        summarize_splits(pd.concat([rows, rows.iloc[:1]]))
    with pytest.raises(ValueError, match="no rows"):
        summarize_splits(rows.iloc[:0])


def test_without_krcc_or_types():
    rows = per_split_rows().drop(columns=["krcc", "n_types"])
    table = summarize_splits(rows)
    assert table["krcc"].isna().all() and table["n_types"].isna().all()


def test_paper_numbers_per_target_columns(tmp_path):
    folder = write_reference_tables(tmp_path / "ref")
    t5 = paper_numbers(folder / "paper_table5_ablation.csv", "livec")
    assert t5["label"].tolist() == [
        "baseline_resnet50 / all",
        "baseline_resnet50 / dgds",
        "hyperiqa / all",
    ]
    assert t5["variant"].tolist()[:2] == ["baseline", "dgqa"] and pd.isna(t5["variant"].iloc[2])
    assert t5["srcc"].tolist() == [0.5646, 0.6958, 0.5633]
    t3 = paper_numbers(folder / "paper_table3_syn_to_authentic.csv", "KonIQ-10k")  # name forms
    assert t3.set_index("label").loc["DGQA", "plcc"] == 0.6866
    assert pd.isna(t3["variant"].iloc[0]) and t3["variant"].iloc[1] == "dgqa"
    # Rows without numbers for the target are dropped (Table 6's "livec" training row).
    t6 = paper_numbers(folder / "paper_table6_gds.csv", "livec")
    assert t6["label"].tolist() == ["gds"]
    assert paper_numbers(folder / "paper_table5_ablation.csv", "bid").empty


def test_paper_numbers_per_target_rows(tmp_path):
    folder = write_reference_tables(tmp_path / "ref")
    t4 = paper_numbers(folder / "paper_table4_pipal.csv", target_key("pipal", "pipal-1"))
    assert t4["variant"].tolist() == ["baseline", "dgqa"]
    assert t4["srcc"].tolist() == [0.4756, 0.5419]
    assert paper_numbers(folder / "paper_table4_pipal.csv", "livec").empty


def test_results_table_puts_paper_rows_after_ours(tmp_path):
    folder = write_reference_tables(tmp_path / "ref")
    paper = paper_numbers_from_dir(folder, "livec")
    assert set(paper["source"]) == {
        "paper paper_table3_syn_to_authentic",
        "paper paper_table5_ablation",
        "paper paper_table6_gds",
    }
    table = results_table(per_split_rows(), paper, counterparts_only=False)
    assert table["source"].iloc[:2].tolist() == ["ours", "ours"]
    assert len(table) == 2 + len(paper)
    assert table.iloc[2:]["n_splits"].isna().all()
    # By default only the paper's like-for-like rows: ResNet-50 on all / DGDS types, DGQA.
    like_for_like = results_table(per_split_rows(), paper)
    assert like_for_like["variant"].iloc[2:].tolist() == [
        "DGQA",
        "baseline_resnet50 / all",
        "baseline_resnet50 / dgds",
    ]
    assert results_table(per_split_rows(), paper.iloc[:0]).shape[0] == 2
    assert paper_numbers_from_dir(folder, "spaq").empty
    with pytest.raises(FileNotFoundError):
        paper_numbers_from_dir(tmp_path / "absent", "livec")


def test_real_reference_tables():
    paper = paper_numbers_from_dir(REFERENCE, "livec")
    ours_counterparts = paper.dropna(subset=["variant"])
    assert set(ours_counterparts["variant"]) == {"baseline", "dgqa"}
    assert paper_selected_types(REFERENCE / "paper_table2_selected_domains.csv", "livec") == [
        1,
        3,
        10,
        17,
        18,
        25,
    ]


def test_paper_selected_types(tmp_path):
    folder = write_reference_tables(tmp_path / "ref")
    path = folder / "paper_table2_selected_domains.csv"
    assert paper_selected_types(path, "PIPAL-1") == [1, 2, 3, 9, 17, 18, 25]
    assert paper_selected_types(path, "spaq") is None
    with pytest.raises(ValueError, match="missing column 'target'"):
        paper_selected_types(folder / "paper_table4_pipal.csv", "livec")


def test_type_overlap_and_selection_markdown():
    overlap = type_overlap([1, 3, 9, 17], [1, 3, 10, 17, 18])
    assert overlap == {"recovered": [1, 3, 17], "missed": [10, 18], "extra": [9]}
    text = selection_markdown([1, 3, 9], reference=[1, 10], reference_label="target's mixture")
    assert "Selected 3 types: #1 gaussian_blur, #3 motion_blur, #9 jpeg2000" in text
    assert "recovered from the target's mixture (1 of 2): #1 gaussian_blur" in text
    assert "missed: #10 jpeg" in text and "also selected: #3 motion_blur, #9 jpeg2000" in text


def test_markdown_table_formatting():
    table = results_table(per_split_rows())
    text = markdown_table(table)
    lines = text.strip().splitlines()
    assert lines[0].startswith("| source | variant | n_types | n_splits | srcc |")
    assert lines[1].split(" | ")[2] == "---:"  # numbers right-aligned
    assert "| ours | baseline | 25 | 5 | 0.5200 | 0.5400 | 0.2600 |" in text
    odd = pd.DataFrame({"a": ["x|y", None], "b": [np.nan, 0.123456], "c": [True, False]})
    text = markdown_table(odd, floatfmt=".2f")
    assert "x\\|y" in text and "| 0.12 |" in text and "| yes |" in text


def test_write_results(tmp_path):
    table = results_table(per_split_rows())
    paths = write_results(table, tmp_path / "out", title="Embedded demo (proxy scores)")
    pd.testing.assert_frame_equal(pd.read_csv(paths["csv"]), table, check_dtype=False)
    md = Path(paths["markdown"]).read_text()
    assert md.startswith("# Embedded demo (proxy scores)\n\n| source |")


def test_plot_predictions(tmp_path):
    rng = np.random.default_rng(0)
    score = rng.uniform(0, 10, 50)
    per_image = pd.DataFrame(
        {"image_id": range(50), "predicted": score + rng.normal(size=50), "score": score}
    )
    fig = plot_predictions(per_image, "LIVEC")
    assert "SRCC" in fig.axes[0].get_title()
    path = save_figure(fig, tmp_path / "scatter.png")
    assert Path(path).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="missing column 'score'"):
        plot_predictions(per_image.drop(columns=["score"]))
