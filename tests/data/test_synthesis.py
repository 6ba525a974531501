"""Synthesis of KADID-10k- and KADIS-700k-style sets through the real Ray path, on tiny images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dgqa_ray import distortions
from dgqa_ray.data.synthesis import (
    KADID_INDEX,
    KADIS_INDEX,
    SynthesisError,
    derive_seed,
    list_references,
    load_rgb,
    read_kadis_table,
    synthesize_kadid,
    synthesize_kadis,
)
from dgqa_ray.data.writers import DatasetWriter, LocalFolderWriter, encode_image
from tests.conftest import natural_image

# Two fast types: one deterministic (Gaussian blur), one stochastic (white noise), so seeds matter.
TYPES = (1, 11)
H, W = 48, 64
NAMES = ("a.png", "b.png", "c.png")


def _write_refs(folder: Path, names=NAMES) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for i, name in enumerate(names):
        images[name] = natural_image(H, W, seed=i)
        Image.fromarray(images[name]).save(folder / name)
    return images


@pytest.fixture
def refs_dir(tmp_path) -> Path:
    _write_refs(tmp_path / "refs")
    return tmp_path / "refs"


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _mtimes(folder: Path) -> dict[str, int]:
    return {name: (folder / name).stat().st_mtime_ns for name in _files(folder)}


def _kadid_files(stems, types=TYPES, levels=range(1, 6)) -> set[str]:
    files = {f"images/{s}.png" for s in stems}
    files |= {f"images/{s}_{t:02d}_{lvl:02d}.png" for s in stems for t in types for lvl in levels}
    return files | {KADID_INDEX, "synthesis.json"}


# ---------------------------------------------------------------------------------------------
# KADID-10k style
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kadid_layout_names_and_index_are_exact(ray_local, refs_dir, tmp_path, capsys):
    out = tmp_path / "kadid"
    result = synthesize_kadid(refs_dir, out, types=TYPES, seed=3, num_cpus=2)

    assert _files(out) == _kadid_files(["a", "b", "c"])  # nothing else: no temporaries left
    index = _read_csv(out / KADID_INDEX)
    assert list(index.columns) == ["dist_img", "ref_img", "dmos", "var"]
    assert len(index) == 3 * 2 * 5
    assert index.iloc[0].tolist() == ["a_01_01.png", "a.png", "", ""]
    assert (index["dmos"] == "").all() and (index["var"] == "").all()
    assert set(index["ref_img"]) == {"a.png", "b.png", "c.png"}
    for name in index["dist_img"]:
        assert name.split("_")[0] + ".png" in set(index["ref_img"])
    with Image.open(out / "images" / "b_11_05.png") as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (W, H)

    assert result.style == "kadid"
    assert result.references == 3 and result.references_skipped == 0
    assert result.images == result.images_written == 3 * (2 * 5 + 1)
    assert Path(result.index_path) == (out / KADID_INDEX).resolve()
    assert result.images_per_second > 0
    progress = capsys.readouterr().err
    assert "[synthesize kadid] references" in progress and "3/3" in progress
    assert "33 images written" in progress


@pytest.mark.slow
def test_kadid_pixels_match_the_distortion_api_with_derived_seeds(ray_local, refs_dir, tmp_path):
    out = tmp_path / "kadid"
    synthesize_kadid(refs_dir, out, types=TYPES, levels=[2, 5], seed=7, progress=False)
    ref = load_rgb(refs_dir / "c.png")
    np.testing.assert_array_equal(load_rgb(out / "images" / "c.png"), ref)
    for dist_type in TYPES:
        expected = distortions.apply(ref, dist_type, 5, seed=derive_seed(7, "c", dist_type, 5))
        np.testing.assert_array_equal(
            load_rgb(out / "images" / f"c_{dist_type:02d}_05.png"), expected
        )
    assert not (out / "images" / "c_01_01.png").exists()  # only the requested levels


@pytest.mark.slow
def test_results_do_not_depend_on_scheduling_or_on_the_other_references(
    ray_local, refs_dir, tmp_path
):
    one_by_one = tmp_path / "serial"
    synthesize_kadid(refs_dir, one_by_one, types=[11], seed=5, num_cpus=1, progress=False)
    only_c = [("c", load_rgb(refs_dir / "c.png"))]  # same stem, given as an array, alone
    alone = tmp_path / "alone"
    synthesize_kadid(only_c, alone, types=[11], seed=5, num_cpus=2, progress=False)
    for lvl in range(1, 6):
        name = f"images/c_11_{lvl:02d}.png"
        assert (one_by_one / name).read_bytes() == (alone / name).read_bytes()

    other_seed = tmp_path / "seed6"
    synthesize_kadid(only_c, other_seed, types=[11], seed=6, progress=False)
    assert (other_seed / "images/c_11_05.png").read_bytes() != (
        alone / "images/c_11_05.png"
    ).read_bytes()


@pytest.mark.slow
def test_rerun_skips_complete_references_and_fills_in_missing_files(ray_local, refs_dir, tmp_path):
    out = tmp_path / "kadid"
    synthesize_kadid(refs_dir, out, types=TYPES, progress=False)
    images_before = {k: v for k, v in _mtimes(out).items() if k.startswith("images/")}

    again = synthesize_kadid(refs_dir, out, types=TYPES, progress=False)
    assert again.references_skipped == 3 and again.images_written == 0
    assert {k: v for k, v in _mtimes(out).items() if k.startswith("images/")} == images_before

    (out / "images" / "b_11_03.png").unlink()  # as if the run had died before writing it
    (out / "images" / ".b_11_04.png.123-abcd.tmp").write_bytes(b"half a file")
    repaired = synthesize_kadid(refs_dir, out, types=TYPES, progress=False)
    assert repaired.references_skipped == 2 and repaired.images_written == 1
    after = _mtimes(out)
    assert all(after[k] == v for k, v in images_before.items() if k != "images/b_11_03.png")
    assert len(_read_csv(out / KADID_INDEX)) == 30


@pytest.mark.slow
def test_interrupted_run_leaves_no_index_and_a_rerun_completes(ray_local, tmp_path):
    refs = tmp_path / "refs"
    _write_refs(refs, names=("a.png", "c.png", "d.png"))
    (refs / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "kadid"

    with pytest.raises(SynthesisError, match=r"b\.png") as err:
        synthesize_kadid(refs, out, types=TYPES, num_cpus=2, progress=False)
    assert "couldn't decode reference image" in str(err.value)
    assert not (out / KADID_INDEX).exists()
    for path in (out / "images").glob("*.png"):  # whatever exists is complete
        assert load_rgb(path).shape == (H, W, 3)
    assert not any(p.name.startswith("b") for p in (out / "images").iterdir())
    done_before = sum((out / "images" / f"{s}.png").exists() for s in "acd")

    Image.fromarray(natural_image(H, W, seed=9)).save(refs / "b.png")  # fix the input
    result = synthesize_kadid(refs, out, types=TYPES, num_cpus=2, progress=False)
    assert result.references == 4 and result.references_skipped == done_before
    assert _files(out) == _kadid_files(["a", "b", "c", "d"])
    index = _read_csv(out / KADID_INDEX)
    assert all((out / "images" / name).is_file() for name in index["dist_img"])


@pytest.mark.slow
def test_array_references_are_converted_to_rgb(ray_local, tmp_path):
    rgb = natural_image(H, W, seed=1)
    grey = rgb[..., 1].copy()  # (H, W)
    rgba = np.concatenate([rgb, np.full((H, W, 1), 7, np.uint8)], axis=2)  # (H, W, 4)
    out = tmp_path / "kadid"
    synthesize_kadid([("grey", grey), ("rgba", rgba)], out, types=[1], levels=[1], progress=False)
    np.testing.assert_array_equal(load_rgb(out / "images/grey.png"), np.stack([grey] * 3, axis=2))
    np.testing.assert_array_equal(load_rgb(out / "images/rgba.png"), rgb)


@pytest.mark.slow
def test_resuming_with_another_seed_is_refused(ray_local, refs_dir, tmp_path):
    out = tmp_path / "kadid"
    synthesize_kadid(refs_dir, out, types=[1], levels=[1], seed=0, progress=False)
    with pytest.raises(ValueError, match="seed 0.*seed 1"):
        synthesize_kadid(refs_dir, out, types=[1], levels=[1], seed=1, progress=False)
    with pytest.raises(ValueError, match="'kadid'"):
        synthesize_kadis(refs_dir, out, types=[1], levels=[1], seed=0, progress=False)


# ---------------------------------------------------------------------------------------------
# KADIS-700k style
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kadis_with_a_table_follows_its_rows(ray_local, refs_dir, tmp_path):
    table = tmp_path / "kadis700k_ref_imgs.csv"
    table.write_text("ref_im,dist_type_1,dist_type_2\nc.png,7,8\na.png,1,\n")
    out = tmp_path / "kadis"
    result = synthesize_kadis(refs_dir, out, table=table, num_cpus=2, progress=False)

    expected = {"ref_imgs/c.png", "ref_imgs/a.png", KADIS_INDEX, "synthesis.json"}
    expected |= {f"dist_imgs/c_07_{lvl:02d}.bmp" for lvl in range(1, 6)}  # dist_type_2 unused
    expected |= {f"dist_imgs/a_01_{lvl:02d}.bmp" for lvl in range(1, 6)}
    assert _files(out) == expected  # b.png is not in the table, so not synthesized
    index = _read_csv(out / KADIS_INDEX)
    assert list(index.columns) == ["ref_im", "dist_type_1", "dist_type_2"]
    assert index.values.tolist() == [["c.png", "7", "8"], ["a.png", "1", ""]]
    with Image.open(out / "dist_imgs" / "c_07_03.bmp") as im:
        assert im.format == "BMP" and im.mode == "RGB" and im.size == (W, H)
    ref = load_rgb(refs_dir / "c.png")
    np.testing.assert_array_equal(load_rgb(out / "ref_imgs/c.png"), ref)
    np.testing.assert_array_equal(
        load_rgb(out / "dist_imgs/c_07_03.bmp"),
        distortions.apply(ref, 7, 3, seed=derive_seed(0, "c", 7, 3)),
    )
    assert result.references == 2 and result.images == 12

    again = synthesize_kadis(refs_dir, out, table=table, progress=False)
    assert again.references_skipped == 2 and again.images_written == 0


@pytest.mark.slow
def test_kadis_without_a_table_draws_a_seeded_type_per_reference(ray_local, refs_dir, tmp_path):
    pool = (1, 10, 11)
    first = tmp_path / "first"
    synthesize_kadis(refs_dir, first, types=pool, seed=4, progress=False)
    index = _read_csv(first / KADIS_INDEX)
    assert index["ref_im"].tolist() == ["a.png", "b.png", "c.png"]
    assert set(index["dist_type_1"].astype(int)) <= set(pool)
    assert (index["dist_type_2"] == "").all()
    for ref_im, dist_type in zip(index["ref_im"], index["dist_type_1"].astype(int), strict=True):
        stem = ref_im.split(".")[0]
        for lvl in range(1, 6):
            assert (first / "dist_imgs" / f"{stem}_{dist_type:02d}_{lvl:02d}.bmp").is_file()
        assert (first / "ref_imgs" / ref_im).is_file()

    second = tmp_path / "second"
    synthesize_kadis(refs_dir, second, types=pool, seed=4, num_cpus=1, progress=False)
    assert (second / KADIS_INDEX).read_bytes() == (first / KADIS_INDEX).read_bytes()
    assert _files(second) == _files(first)


def test_kadis_table_type_draws_cover_the_pool():
    # The per-reference draw is uniform over the pool (no Ray needed to check the rule).
    draws = {
        int(np.random.default_rng(derive_seed(0, f"r{i}", 0, 0)).choice((1, 10, 11)))
        for i in range(60)
    }
    assert draws == {1, 10, 11}


# ---------------------------------------------------------------------------------------------
# Bad input: errors name the file / row (no Ray needed: checked before any work starts)
# ---------------------------------------------------------------------------------------------


def test_missing_or_empty_reference_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        synthesize_kadid(tmp_path / "nowhere", tmp_path / "out", types=[1])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"no reference images in '.*empty'"):
        synthesize_kadid(tmp_path / "empty", tmp_path / "out", types=[1])
    assert not (tmp_path / "out").exists()


def test_colliding_stems_are_refused(tmp_path):
    _write_refs(tmp_path / "refs", names=("a.png", "a.jpg"))
    with pytest.raises(ValueError, match="'a.jpg' and 'a.png' share the stem 'a'"):
        list_references(tmp_path / "refs")


def test_bad_array_references_name_the_item():
    with pytest.raises(ValueError, match=r"refs\[1\] 'f'.*uint8"):
        list_references([("g", np.zeros((8, 8, 3), np.uint8)), ("f", np.zeros((8, 8, 3)))])
    with pytest.raises(ValueError, match=r"refs\[0\].*plain file name"):
        list_references([("sub/x", np.zeros((8, 8, 3), np.uint8))])
    with pytest.raises(ValueError, match="empty"):
        list_references([])


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_rgb(bad)


@pytest.mark.parametrize(
    ("table_text", "match"),
    [
        ("ref_im,dist_type_1,dist_type_2\na.png,3,\nzz.png,4,\n", r"line 3: ref_im 'zz.png'"),
        ("ref_im,dist_type_1,dist_type_2\na.png,26,\n", r"line 2 \(ref_im 'a.png'\).*got '26'"),
        ("ref_im,dist_type_1,dist_type_2\na.png,x,\n", r"dist_type_1.*got 'x'"),
        ("ref_im,dist_type_1,dist_type_2\na.png,,\n", r"line 2.*dist_type_1 is empty"),
        ("ref_im,dist_type_1,dist_type_2\na.png,7,0\n", r"dist_type_2.*got '0'"),
        ("ref_im,dist_type_1\na.png,3\na.png,4\n", r"line 3.*repeats line 2"),
        ("ref_im,type\na.png,3\n", r"lacks column\(s\) \['dist_type_1'\]"),
        ("ref_im,dist_type_1,dist_type_2\n", "no rows"),
    ],
)
def test_bad_kadis_tables_name_the_row(refs_dir, tmp_path, table_text, match):
    table = tmp_path / "table.csv"
    table.write_text(table_text)
    with pytest.raises(ValueError, match=match) as err:
        synthesize_kadis(refs_dir, tmp_path / "out", table=table)
    assert "table" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_kadis_table_parsing_tolerates_blank_lines_and_float_ids(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("ref_im, dist_type_1, dist_type_2\nx.png, 7.0, 8\n\ny.png,3,\n")
    rows = read_kadis_table(table)
    assert [(r.ref_im, r.dist_type_1, r.dist_type_2, r.line) for r in rows] == [
        ("x.png", 7, 8, 2),
        ("y.png", 3, None, 4),
    ]
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_kadis_table(tmp_path / "missing.csv")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"types": [26]}, "dist_type"),
        ({"types": ["no_such_type"]}, "dist_type"),
        ({"types": []}, "types"),
        ({"levels": [0, 1]}, "levels"),
        ({"num_cpus": 0}, "num_cpus"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_arguments_name_the_argument(refs_dir, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthesize_kadid(refs_dir, tmp_path / "out", **kwargs)


def test_types_and_table_are_exclusive(refs_dir, tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("ref_im,dist_type_1\na.png,3\n")
    with pytest.raises(ValueError, match="types: not allowed together with table"):
        synthesize_kadis(refs_dir, tmp_path / "out", table=table, types=[1])


# ---------------------------------------------------------------------------------------------
# The writer
# ---------------------------------------------------------------------------------------------


def test_local_writer_is_atomic_and_stays_inside_its_root(tmp_path):
    writer = LocalFolderWriter(tmp_path / "ds")
    assert isinstance(writer, DatasetWriter)
    image = natural_image(H, W)
    writer.write_image("dist_imgs/x_01_01.bmp", image, "bmp")
    writer.write_index("index.csv", pd.DataFrame({"a": [1, None], "b": ["x", "y"]}))
    assert _files(tmp_path / "ds") == {"dist_imgs/x_01_01.bmp", "index.csv"}
    assert writer.exists("dist_imgs/x_01_01.bmp") and not writer.exists("dist_imgs/y.bmp")
    np.testing.assert_array_equal(load_rgb(tmp_path / "ds/dist_imgs/x_01_01.bmp"), image)
    assert (tmp_path / "ds/index.csv").read_text() == "a,b\n1.0,x\n,y\n"
    with pytest.raises(ValueError, match="relpath"):
        writer.write_text("../escape.txt", "no")
    with pytest.raises(ValueError, match="format"):
        encode_image(image, "jpeg")


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path, monkeypatch):
    writer = LocalFolderWriter(tmp_path)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        writer.write_image("images/a.png", natural_image(H, W), "png")
    assert list((tmp_path / "images").iterdir()) == []


def test_references_whose_files_would_collide_are_refused(tmp_path):
    image = natural_image(H, W)
    with pytest.raises(ValueError, match="'x' and 'x_01_02' would both write 'images/x_01_02.png'"):
        synthesize_kadid([("x", image), ("x_01_02", image)], tmp_path / "out", types=[1])
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------


def _load_job():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "jobs" / "synthesize.py"
    spec = importlib.util.spec_from_file_location("synthesize_job", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_job_help_lists_the_defaults(capsys):
    with pytest.raises(SystemExit):
        _load_job().main(["--help"])
    text = capsys.readouterr().out
    assert "ray job submit --working-dir . -- python jobs/synthesize.py" in text
    assert "(default: kadid)" in text and "./dgqa_output/synth/<style>" in text


@pytest.mark.slow
def test_job_synthesizes_embedded_tiles_and_says_where(ray_local, tmp_path, capsys):
    job = _load_job()
    out = tmp_path / "kadis"
    argv = ["--style", "kadis", "--max-refs", "2", "--types", "jpeg", "--out", str(out)]
    assert job.main([*argv, "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"index:   {(out / KADIS_INDEX).resolve()}" in printed
    index = _read_csv(out / KADIS_INDEX)
    assert index.values.tolist() == [
        ["skimage_astronaut_t00.png", "10", ""],
        ["skimage_chelsea_t00.png", "10", ""],
    ]
    assert job.main(["--refs", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "nowhere' does not exist" in capsys.readouterr().err
