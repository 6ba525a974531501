"""Adapters read tiny copies of each dataset in its real format (tests/fixtures/datasets.py)."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dgqa_ray.data.adapters import (
    ADAPTERS,
    PAPER_TARGETS,
    PIPAL_SUBTYPES,
    adapter_options,
    open_adapter,
)
from dgqa_ray.data.adapters.base import minmax_score
from dgqa_ray.data.errors import DatasetError
from dgqa_ray.data.schema import INDEX_COLUMNS
from tests.fixtures.datasets import (
    BUILDERS,
    build_bid,
    build_custom,
    build_kadid,
    build_kadis,
    build_koniq,
    build_livec,
    build_pipal,
)

# The paper's tables as packaged with the project (copies of the shared reference folder).
REFERENCE = Path(__file__).resolve().parents[2] / "dgqa_ray" / "reference"

# The file(s) whose absence means "no index" for each dataset, relative to its folder.
INDEX_FILES = {
    "kadid10k": ["dmos.csv"],
    "kadis700k": ["kadis700k_ref_imgs.csv"],
    "livec": ["Data/AllMOS_release.mat"],
    "koniq10k": ["koniq10k_scores_and_distributions.csv"],
    "bid": ["DatabaseGrades.xlsx"],
    "pipal": ["Train_Label"],
    "spaq": ["Annotations/MOS and Image attribute scores.xlsx"],
    "custom": ["index.csv"],
}


def _error(built, match: str | None = None) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        built.open().index()
    message = str(info.value)
    assert message.startswith(built.expected["dataset"].iloc[0]), message
    if match is not None:
        assert match in message, message
    return info.value


# -- every dataset: the index is what was written ----------------------------------------------


def test_registry_lists_every_dataset():
    assert sorted(ADAPTERS) == sorted(BUILDERS)
    for name, cls in ADAPTERS.items():
        assert cls.name == name


def test_index_matches_what_was_written(any_dataset):
    index = any_dataset.open().index()
    assert list(index.columns) == INDEX_COLUMNS
    pd.testing.assert_frame_equal(index, any_dataset.expected)
    assert index["image_id"].is_unique
    assert all(os.path.isabs(p) and os.path.exists(p) for p in index["path"])


def test_scores_span_zero_to_ten_in_published_direction(any_dataset):
    index = any_dataset.open().index()
    labelled = index["mos"].notna()
    if not labelled.any():  # KADIS: unlabelled by design
        assert index["score"].isna().all()
        return
    scores = index.loc[labelled, "score"]
    assert scores.min() == 0.0 and scores.max() == 10.0
    mos = index.loc[labelled, "mos"]
    # Higher published score -> higher normalised score, for every dataset here.
    assert scores.iloc[int(np.argmax(mos))] == 10.0
    assert scores.iloc[int(np.argmin(mos))] == 0.0
    assert np.corrcoef(mos, scores)[0, 1] == pytest.approx(1.0)


def test_missing_index_file_names_dataset_and_file(any_dataset):
    for rel in INDEX_FILES[any_dataset.name]:
        target = Path(any_dataset.folder) / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    error = _error(any_dataset)
    assert any(Path(rel).name in str(error) for rel in INDEX_FILES[any_dataset.name]), error


def test_missing_images_are_listed_with_count(any_dataset):
    listed = any_dataset.expected
    if any_dataset.name == "kadis700k":  # its generated images are found, not listed
        listed = listed[listed["dist_type"] == 0]
    victims = listed["path"].iloc[[0, -1]].tolist()
    for path in victims:
        os.remove(path)
    error = _error(any_dataset, "2 image(s) listed in the index are missing")
    for path in victims:
        assert Path(path).stem in str(error)


# -- KADID-10k ---------------------------------------------------------------------------------


def test_kadid_ids_types_levels(kadid_dataset):
    index = kadid_dataset.open().index()
    assert len(index) == 2 * 2 * 3
    assert index["image_id"].iloc[0] == "I01_01_01"
    assert set(index["ref_id"]) == {"I01", "I02"}
    assert set(index["dist_type"]) == {1, 2}
    assert set(index["dist_level"]) == {1, 2, 3}
    assert index["subset"].isna().all()
    # The pristine references in images/ are not rows: dmos.csv does not list them.
    assert "I01" not in set(index["image_id"])
    with open(Path(kadid_dataset.folder) / "dmos.csv") as f:
        written = [float(row["dmos"]) for row in csv.DictReader(f)]
    assert index["mos"].tolist() == written


def test_kadid_non_numeric_score_names_row_and_value(kadid_dataset):
    path = Path(kadid_dataset.folder) / "dmos.csv"
    lines = path.read_text().splitlines()
    name, ref, _, var = lines[3].split(",")  # line 4 of the file (header is line 1)
    lines[3] = f"{name},{ref},abc,{var}"
    path.write_text("\n".join(lines) + "\n")
    error = _error(kadid_dataset, "dmos.csv: row 4: column 'dmos' must hold numbers, found 'abc'")
    assert error.row == 4 and error.file.endswith("dmos.csv")


def test_kadid_misnamed_column_lists_found_and_expected(kadid_dataset):
    path = Path(kadid_dataset.folder) / "dmos.csv"
    text = path.read_text()
    path.write_text(text.replace("dist_img,ref_img,dmos,var", "dist_img,ref_img,DMOS,var", 1))
    error = str(_error(kadid_dataset))
    assert "missing column(s) 'dmos' (did you mean 'DMOS'?)" in error
    assert "expected columns ['dist_img', 'ref_img', 'dmos']" in error
    assert "found ['dist_img', 'ref_img', 'DMOS', 'var']" in error


def test_kadid_bad_distorted_name_names_row(kadid_dataset):
    path = Path(kadid_dataset.folder) / "dmos.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("I01_01_02.png", "I01_26_02.png")  # type 26 does not exist
    path.write_text("\n".join(lines) + "\n")
    _error(kadid_dataset, "row 3: dist_img 'I01_26_02.png' is not named")


def test_kadid_empty_table_is_an_error(kadid_dataset):
    (Path(kadid_dataset.folder) / "dmos.csv").write_text("dist_img,ref_img,dmos,var\n")
    _error(kadid_dataset, "the dataset has no images")


def test_kadid_synthesized_set_without_scores_is_unlabelled(kadid_dataset):
    path = Path(kadid_dataset.folder) / "dmos.csv"
    table = pd.read_csv(path, dtype=str)
    table["dmos"] = ""
    table["var"] = ""
    table.to_csv(path, index=False)  # as synthesis.py writes it: "I01_01_01.png,I01.png,,"
    index = kadid_dataset.open().index()
    assert index["mos"].isna().all() and index["score"].isna().all()
    assert index["dist_type"].tolist() == kadid_dataset.expected["dist_type"].tolist()
    table.loc[2, "dmos"] = "3.5"  # one score among empties: a damaged file, not a choice
    table.to_csv(path, index=False)
    error = _error(kadid_dataset, "column 'dmos' must hold numbers, found an empty cell")
    assert error.row == 2 and "(11 bad rows: 2, 3, 5, 6, 7, ...)" in str(error)


def test_kadid_empty_cell_names_row(kadid_dataset):
    path = Path(kadid_dataset.folder) / "dmos.csv"
    lines = path.read_text().splitlines()
    lines[5] = "," + lines[5].split(",", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    _error(kadid_dataset, "row 6: column 'dist_img' is empty")


def test_many_missing_images_are_summarised(tmp_path):
    built = build_kadid(tmp_path / "k", n_refs=3)  # 18 images
    for path in built.expected["path"].iloc[:8]:
        os.remove(path)
    error = str(_error(built, "8 image(s) listed in the index are missing"))
    assert "'I01_01_01.png' (row 2)" in error
    assert "and 3 more" in error  # five named, the rest counted
    assert "holds 13 image file(s)" in error  # 10 distorted + the 3 references


def test_blank_lines_and_bom_are_tolerated(kadid_dataset):
    path = Path(kadid_dataset.folder) / "dmos.csv"
    lines = path.read_text().splitlines()
    path.write_text("\ufeff" + "\n".join(lines[:4] + [""] + lines[4:]) + "\n\n")
    index = kadid_dataset.open().index()
    pd.testing.assert_frame_equal(index, kadid_dataset.expected)


def test_case_of_file_suffix_does_not_matter(kadid_dataset):
    first = Path(kadid_dataset.expected["path"].iloc[0])
    os.rename(first, first.with_suffix(".PNG"))
    index = kadid_dataset.open().index()
    assert index["path"].iloc[0] == str(first.with_suffix(".PNG"))


# -- KADIS-700k --------------------------------------------------------------------------------


def test_kadis_references_and_generated_images(kadis_dataset):
    index = kadis_dataset.open().index()
    refs = index[index["dist_type"] == 0]
    assert refs["image_id"].tolist() == ["ref0000", "ref0001", "ref0002"]
    assert (refs["ref_id"] == refs["image_id"]).all()
    assert refs["dist_level"].isna().all()
    dist = index[index["dist_type"] != 0]
    assert dist["image_id"].tolist() == [
        "ref0000_07_01",
        "ref0000_07_02",
        "ref0001_12_01",
        "ref0001_12_02",
    ]
    assert dist["ref_id"].tolist() == ["ref0000", "ref0000", "ref0001", "ref0001"]
    assert dist["dist_type"].tolist() == [7, 7, 12, 12]
    assert dist["dist_level"].tolist() == [1, 2, 1, 2]
    assert index["mos"].isna().all() and index["score"].isna().all()


def test_kadis_without_generated_images_indexes_references(tmp_path):
    built = build_kadis(tmp_path / "k", n_distorted_refs=0)
    assert not (Path(built.folder) / "dist_imgs").exists()
    index = built.open().index()
    assert (index["dist_type"] == 0).all() and len(index) == 3


def test_kadis_options_select_parts(kadis_dataset):
    only_dist = open_adapter("kadis700k", kadis_dataset.root, include_references=False).index()
    assert (only_dist["dist_type"] > 0).all() and len(only_dist) == 4
    only_refs = open_adapter("kadis700k", kadis_dataset.root, include_distorted=False).index()
    assert (only_refs["dist_type"] == 0).all() and len(only_refs) == 3
    with pytest.raises(ValueError, match="nothing to index"):
        open_adapter(
            "kadis700k", kadis_dataset.root, include_references=False, include_distorted=False
        )


def test_kadis_generated_image_of_unknown_reference(kadis_dataset):
    src = Path(kadis_dataset.folder) / "dist_imgs" / "ref0000_07_01.bmp"
    shutil.copy(src, src.with_name("stranger_07_01.bmp"))
    _error(kadis_dataset, "name a reference that kadis700k_ref_imgs.csv does not list")


def test_kadis_badly_named_generated_image(kadis_dataset):
    src = Path(kadis_dataset.folder) / "dist_imgs" / "ref0000_07_01.bmp"
    shutil.copy(src, src.with_name("ref0000_07_09.bmp"))  # level 9 does not exist
    _error(kadis_dataset, "ref0000_07_09.bmp")


def test_kadis_only_generated_images_but_none_present(tmp_path):
    built = build_kadis(tmp_path / "k", n_distorted_refs=0)
    with pytest.raises(DatasetError, match="no images"):
        open_adapter("kadis700k", built.root, include_references=False).index()


# -- LIVEC -------------------------------------------------------------------------------------


def test_livec_drops_the_seven_training_entries(livec_dataset):
    index = livec_dataset.open().index()
    assert len(index) == 5
    assert not any(i.startswith("t") for i in index["image_id"])
    assert index["image_id"].tolist() == ["10", "11", "12", "13", "14"]
    assert (index["ref_id"] == index["image_id"]).all()
    assert index["dist_type"].isna().all() and index["dist_level"].isna().all()
    import scipy.io

    mos = scipy.io.loadmat(Path(livec_dataset.folder) / "Data" / "AllMOS_release.mat")
    assert index["mos"].tolist() == mos["AllMOS_release"].ravel()[7:].tolist()


def test_livec_does_not_need_the_training_images(tmp_path):
    built = build_livec(tmp_path / "l", write_training_images=False)
    pd.testing.assert_frame_equal(built.open().index(), built.expected)


def test_livec_missing_variable_lists_variables_found(livec_dataset):
    import scipy.io

    path = Path(livec_dataset.folder) / "Data" / "AllMOS_release.mat"
    scipy.io.savemat(path, {"AllMOS": np.arange(12.0)})
    _error(livec_dataset, "variable 'AllMOS_release' not found; variables found: ['AllMOS']")


def test_livec_length_mismatch(livec_dataset):
    import scipy.io

    path = Path(livec_dataset.folder) / "Data" / "AllMOS_release.mat"
    scipy.io.savemat(path, {"AllMOS_release": np.arange(11.0).reshape(1, -1)})
    _error(livec_dataset, "lists 12 images but")


def test_livec_non_numeric_score_names_entry(livec_dataset):
    import scipy.io

    path = Path(livec_dataset.folder) / "Data" / "AllMOS_release.mat"
    mos = scipy.io.loadmat(path)["AllMOS_release"]
    mos[0, 9] = np.nan
    scipy.io.savemat(path, {"AllMOS_release": mos})
    error = _error(livec_dataset, "row 10: entry 10 of AllMOS_release is nan")
    assert error.row == 10


def test_livec_not_a_mat_file(livec_dataset):
    (Path(livec_dataset.folder) / "Data" / "AllImages_release.mat").write_bytes(b"not a mat")
    _error(livec_dataset, "could not read as a MATLAB .mat file")


# -- KonIQ-10k ---------------------------------------------------------------------------------


def test_koniq_full_resolution_folder(tmp_path):
    built = build_koniq(tmp_path / "k", resolution="1024x768")
    index = built.open().index()
    assert all("/1024x768/" in p for p in index["path"])
    with pytest.raises(DatasetError, match="512x384"):  # that folder was not written
        open_adapter("koniq10k", built.root).index()


def test_koniq_options_are_validated(koniq_dataset):
    with pytest.raises(ValueError, match="Only 512x384, 1024x768 are supported"):
        open_adapter("koniq10k", koniq_dataset.root, resolution="800x600")
    with pytest.raises(ValueError, match="Only MOS, MOS_zscore are supported"):
        open_adapter("koniq10k", koniq_dataset.root, mos_column="SD")


def test_koniq_zscore_column(koniq_dataset):
    index = open_adapter("koniq10k", koniq_dataset.root, mos_column="MOS_zscore").index()
    expected = (koniq_dataset.expected["mos"] - 1) / 4 * 100
    np.testing.assert_allclose(index["mos"], expected, atol=1e-5)


def test_koniq_lowercase_mos_column(koniq_dataset):
    path = Path(koniq_dataset.folder) / "koniq10k_scores_and_distributions.csv"
    path.write_text(path.read_text().replace(",MOS,", ",mos,", 1))
    _error(koniq_dataset, "missing column(s) 'MOS' (did you mean 'mos'?)")


# -- BID ---------------------------------------------------------------------------------------


def test_bid_finds_images_in_nested_subfolders(bid_dataset):
    index = bid_dataset.open().index()
    assert index["image_id"].tolist() == [f"DatabaseImage{n:04d}" for n in range(1, 7)]
    assert any("/Part2/more/" in p for p in index["path"])


def test_bid_workbook_one_folder_down(tmp_path):
    built = build_bid(tmp_path / "outer" / "BID")
    index = open_adapter("bid", str(tmp_path / "outer")).index()
    assert index["image_id"].tolist() == built.expected["image_id"].tolist()
    assert index["mos"].tolist() == built.expected["mos"].tolist()


def test_bid_text_grade_names_spreadsheet_row(bid_dataset):
    from openpyxl import load_workbook

    path = Path(bid_dataset.folder) / "DatabaseGrades.xlsx"
    book = load_workbook(path)
    book.active["B4"] = "n/a"  # spreadsheet row 4 = third image
    book.save(path)
    error = _error(
        bid_dataset,
        "DatabaseGrades.xlsx: row 4: column 'Average Subjective Grade' "
        "must hold numbers, found 'n/a'",
    )
    assert error.row == 4


def test_bid_fractional_image_number(bid_dataset):
    from openpyxl import load_workbook

    path = Path(bid_dataset.folder) / "DatabaseGrades.xlsx"
    book = load_workbook(path)
    book.active["A3"] = 2.5
    book.save(path)
    _error(bid_dataset, "row 3: column 'Image Number' must hold whole numbers")


def test_bid_same_image_in_two_folders_is_ambiguous(bid_dataset):
    src = Path(bid_dataset.expected["path"].iloc[0])
    copy = Path(bid_dataset.folder) / "Copy" / src.name
    copy.parent.mkdir()
    shutil.copy(src, copy)
    _error(bid_dataset, "is found in 2 places")


def test_bid_not_a_workbook(bid_dataset):
    (Path(bid_dataset.folder) / "DatabaseGrades.xlsx").write_bytes(b"PK\x03\x04 broken")
    _error(bid_dataset, "could not read as an .xlsx workbook")


# -- PIPAL -------------------------------------------------------------------------------------


def test_pipal_subtypes_follow_the_class_id(pipal_dataset):
    index = pipal_dataset.open().index()
    assert len(index) == 2 * 7
    by_id = dict(zip(index["image_id"], index["subset"], strict=True))
    assert by_id["A0001_00_00"] == "traditional_sr"
    assert by_id["A0001_01_00"] == "psnr_originated_sr"
    assert by_id["A0001_02_00"] == "sr_kernel_mismatch"
    assert by_id["A0002_03_00"] == "gan_based_sr"
    assert by_id["A0002_04_00"] == "denoising"
    assert by_id["A0002_05_00"] == "sr_and_denoising_joint"
    assert by_id["A0002_06_00"] == "traditional_distortions"
    assert set(index["ref_id"]) == {"A0001", "A0002"}
    assert index["dist_type"].isna().all() and index["dist_level"].isna().all()
    # Images are found in the Distortion_1 / Distortion_2 subfolders of Train_Dist.
    assert {Path(p).parent.name for p in index["path"]} == {"Distortion_1", "Distortion_2"}


def test_pipal_paper_targets_match_table4():
    table = pd.read_csv(REFERENCE / "paper_table4_pipal.csv")
    table = table[table["subtype"].str.startswith("pipal-")]
    assert dict(zip(table["subtype"], table["name"], strict=True)) == PAPER_TARGETS
    assert set(PAPER_TARGETS.values()) <= set(PIPAL_SUBTYPES.values())


def test_pipal_subtypes_option_keeps_one_target(pipal_dataset):
    index = open_adapter("pipal", pipal_dataset.root, subtypes=["gan_based_sr"]).index()
    assert index["image_id"].tolist() == ["A0001_03_00", "A0002_03_00"]
    assert sorted(index["score"].tolist()) == [0.0, 10.0]  # normalised within the target
    with pytest.raises(ValueError, match="Invalid subtypes"):
        open_adapter("pipal", pipal_dataset.root, subtypes=["gan_sr"])


def test_pipal_unknown_class_is_kept_not_guessed(tmp_path):
    built = build_pipal(tmp_path / "p", n_refs=1, classes=("03", "10"))
    index = built.open().index()
    assert index["subset"].tolist() == ["gan_based_sr", "class_10"]


def test_pipal_subtype_map_override(pipal_dataset):
    mapping = {"00": "a", 1: "b"}  # 1: how YAML reads --option subtype_map={01: b}
    index = open_adapter("pipal", pipal_dataset.root, subtype_map=mapping).index()
    assert index["subset"].iloc[:3].tolist() == ["a", "b", "class_02"]


def test_pipal_references_as_pristine_rows(pipal_dataset):
    index = open_adapter("pipal", pipal_dataset.root, include_references=True).index()
    refs = index[index["dist_type"] == 0]
    assert refs["image_id"].tolist() == ["A0001", "A0002"]
    assert (refs["subset"] == "reference").all() and refs["mos"].isna().all()
    labelled = index["mos"].notna()
    assert index.loc[labelled, "score"].min() == 0 and index.loc[labelled, "score"].max() == 10


def test_pipal_bad_line_names_file_and_line(pipal_dataset):
    path = Path(pipal_dataset.folder) / "Train_Label" / "A0002.txt"
    lines = path.read_text().splitlines()
    lines[2] = "A0002_02_00.bmp 1500.0"  # no comma
    path.write_text("\n".join(lines) + "\n")
    error = _error(pipal_dataset, "A0002.txt: row 3: expected '<image name>,<score>'")
    assert error.row == 3


def test_pipal_non_numeric_score(pipal_dataset):
    path = Path(pipal_dataset.folder) / "Train_Label" / "A0001.txt"
    lines = path.read_text().splitlines()
    lines[4] = "A0001_04_00.bmp,high"
    path.write_text("\n".join(lines) + "\n")
    _error(pipal_dataset, "A0001.txt: row 5: the score must be a number, found 'high'")


def test_pipal_empty_label_files(pipal_dataset):
    for path in (Path(pipal_dataset.folder) / "Train_Label").glob("*.txt"):
        path.write_text("\n")
    _error(pipal_dataset, "label file(s) hold no lines")


def test_pipal_missing_image_names_its_label_file(pipal_dataset):
    os.remove(pipal_dataset.expected["path"].iloc[9])  # A0002_02_00
    error = _error(pipal_dataset, "'A0002_02_00.bmp' (row 3)")
    assert error.file.endswith("A0002.txt")


# -- SPAQ --------------------------------------------------------------------------------------


def test_spaq_ids_and_scores(spaq_dataset):
    index = spaq_dataset.open().index()
    assert index["image_id"].tolist() == ["00001", "00002", "00003", "00004", "00005", "00006"]
    assert index["mos"].tolist() == spaq_dataset.expected["mos"].tolist()


def test_spaq_misnamed_column(spaq_dataset):
    from openpyxl import load_workbook

    path = Path(spaq_dataset.folder) / "Annotations" / "MOS and Image attribute scores.xlsx"
    book = load_workbook(path)
    book.active["A1"] = "Image"
    book.save(path)
    error = str(_error(spaq_dataset, "missing column(s) 'Image name'"))
    assert "found ['Image', 'MOS', 'Brightness'" in error


# -- custom ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_custom_table_kinds(tmp_path, kind):
    built = build_custom(tmp_path / "c", kind=kind)
    pd.testing.assert_frame_equal(built.open().index(), built.expected)


def test_custom_without_scores_is_unlabelled(tmp_path):
    built = build_custom(tmp_path / "c", with_scores=False)
    index = built.open().index()
    assert index["mos"].isna().all() and index["score"].isna().all()
    assert index["image_id"].tolist() == built.expected["image_id"].tolist()


def test_custom_lower_is_better_is_flipped(tmp_path):
    built = build_custom(tmp_path / "c", higher_is_better=False)
    index = built.open().index()
    assert index["score"].iloc[int(np.argmin(index["mos"]))] == 10.0
    assert index["score"].iloc[int(np.argmax(index["mos"]))] == 0.0
    pd.testing.assert_frame_equal(index, built.expected)


def test_custom_ids_refs_and_absolute_paths(tmp_path):
    elsewhere = tmp_path / "elsewhere.png"
    from tests.fixtures.datasets import write_image

    write_image(elsewhere, 64, 48, seed=5)
    folder = tmp_path / "c"
    built = build_custom(folder, n_images=3)
    table = pd.read_csv(built.root)
    table.loc[len(table)] = [str(elsewhere), 5.0]
    table["name"] = ["a", "b", "c", "d"]
    table["scene"] = ["s1", "s1", "s2", "s3"]
    table.to_csv(built.root, index=False)
    index = open_adapter(
        "custom",
        built.root,
        score_column="score",
        id_column="name",
        ref_column="scene",
        dataset_name="my_photos",
    ).index()
    assert index["image_id"].tolist() == ["a", "b", "c", "d"]
    assert index["ref_id"].tolist() == ["s1", "s1", "s2", "s3"]
    assert index["dataset"].unique().tolist() == ["my_photos"]
    assert index["path"].iloc[3] == str(elsewhere)


def test_custom_bad_inputs(tmp_path):
    built = build_custom(tmp_path / "c")
    with pytest.raises(ValueError, match="root must be the table file itself"):
        open_adapter("custom", built.folder)
    with pytest.raises(DatasetError, match="missing column.*'image'.*found \\['path', 'score'\\]"):
        open_adapter("custom", built.root, path_column="image").index()
    table = pd.read_csv(built.root, dtype=str)
    table.loc[4, "score"] = "good"
    table.to_csv(built.root, index=False)
    _error(built, "index.csv: row 6: column 'score' must hold numbers, found 'good'")
    pd.DataFrame({"path": [], "score": []}).to_csv(built.root, index=False)
    _error(built, "the dataset has no images")


def test_custom_duplicate_ids(tmp_path):
    built = build_custom(tmp_path / "c")
    table = pd.read_csv(built.root)
    table.loc[len(table)] = table.iloc[0]
    table.to_csv(built.root, index=False)
    _error(
        built,
        f"1 image id(s) appear more than once, e.g. 'photos/img_000.png' in rows 1, {len(table)}",
    )


def test_custom_parquet_missing_image_reports_position(tmp_path):
    built = build_custom(tmp_path / "c", kind="parquet")
    os.remove(built.expected["path"].iloc[1])
    _error(built, "'photos/img_001.jpg' (row 2)")


# -- registry ----------------------------------------------------------------------------------


def test_open_adapter_rejects_unknown_names_and_options(kadid_dataset):
    with pytest.raises(ValueError, match="Invalid dataset 'kadid'. Only kadid10k, kadis700k"):
        open_adapter("kadid", kadid_dataset.root)
    with pytest.raises(ValueError, match="Invalid option\\(s\\) \\['resolution'\\].*images_dir"):
        open_adapter("kadid10k", kadid_dataset.root, resolution="512x384")
    assert adapter_options("koniq10k") == {"resolution": "512x384", "mos_column": "MOS"}


def test_equal_scores_cannot_be_normalised(tmp_path):
    built = build_kadid(tmp_path / "k", n_refs=1, types=(1,), levels=(1, 2))
    path = Path(built.folder) / "dmos.csv"
    path.write_text(
        "dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,3,0\nI01_01_02.png,I01.png,3,0\n"
    )
    _error(built, "every labelled score equals 3.0")


def test_minmax_score_direction():
    mos = np.array([1.0, 3.0, np.nan, 5.0])
    np.testing.assert_allclose(minmax_score(mos, higher_is_better=True), [0, 5, np.nan, 10])
    np.testing.assert_allclose(minmax_score(mos, higher_is_better=False), [10, 5, np.nan, 0])


def test_relative_root_becomes_absolute(kadid_dataset, monkeypatch):
    monkeypatch.chdir(Path(kadid_dataset.folder).parent)
    expected = kadid_dataset.expected["path"].tolist()
    for root in (Path(kadid_dataset.folder).name, Path(kadid_dataset.folder).name + "/"):
        assert open_adapter("kadid10k", root).index()["path"].tolist() == expected
    assert open_adapter("kadid10k", Path(kadid_dataset.folder)).index()["path"].tolist() == expected
    file_uri = "file://" + kadid_dataset.folder
    assert open_adapter("kadid10k", file_uri).index()["path"].tolist() == expected


# -- the same adapters reading from an S3 bucket (SeaweedFS on loopback) ------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kadid10k", "livec", "bid", "pipal", "spaq", "custom"])
def test_adapters_read_from_s3(s3_server, tmp_path, name):
    local = BUILDERS[name](tmp_path / name)
    remote = local.upload(s3_server.unique_uri(name), client=s3_server.client())
    index = remote.open().index()
    assert all(p.startswith(remote.folder + "/") for p in index["path"])
    pd.testing.assert_frame_equal(index, remote.expected)


@pytest.mark.slow
def test_s3_missing_images_and_index_are_reported(s3_server, tmp_path):
    local = build_kadis(tmp_path / "kadis")
    remote = local.upload(s3_server.unique_uri("kadis"), client=s3_server.client())
    client = s3_server.client()
    bucket, _, prefix = remote.folder[len("s3://") :].partition("/")
    client.delete_object(Bucket=bucket, Key=f"{prefix}/ref_imgs/ref0001.png")
    with pytest.raises(DatasetError, match="1 image\\(s\\) listed .* 'ref0001.png' \\(row 3\\)"):
        remote.open().index()
    with pytest.raises(DatasetError, match="index file not found") as info:
        open_adapter("kadid10k", remote.folder).index()
    assert str(info.value).startswith(f"kadid10k: {remote.folder}/dmos.csv")
