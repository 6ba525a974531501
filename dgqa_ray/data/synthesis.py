"""Synthesize KADID-10k-style and KADIS-700k-style datasets from pristine references, on Ray.

>>> from dgqa_ray.demo.photos import embedded_references
>>> synthesize_kadid(embedded_references(max_tiles=4), "out/kadid", types=[1, 10])
>>> synthesize_kadis("refs/", "out/kadis", table="refs/kadis700k_ref_imgs.csv")

Both write the files and index tables the published datasets use, so the rest of the system
reads synthesized and published data the same way (``docs/design.md`` section 1):

KADID-10k style (every reference x every type x every level)::

    out_dir/images/<stem>.png             pristine reference
    out_dir/images/<stem>_<TT>_<LL>.png   type TT (01..25), level LL (01..05)
    out_dir/dmos.csv                      dist_img,ref_img,dmos,var (dmos and var empty: no
                                          subjective scores exist for synthesized images)

KADIS-700k style (every reference x one type x every level)::

    out_dir/ref_imgs/<stem>.png           pristine reference
    out_dir/dist_imgs/<stem>_<TT>_<LL>.bmp
    out_dir/kadis700k_ref_imgs.csv        ref_im,dist_type_1,dist_type_2

The type of each KADIS reference comes from a ``kadis700k_ref_imgs.csv``-style table or, without
one, is drawn per reference from ``types`` with a seed derived from the run seed and the
reference's stem. Like the reference script ``generate_kadis700k.m``, only ``dist_type_1`` is
generated; ``dist_type_2`` (set for a few rows of the published table, usually 8 next to 7) is
copied to the index and otherwise ignored.

Behaviour worth knowing:

* **References.** A folder (non-recursive; ``.png .jpg .jpeg .bmp .tif .tiff``, any case; hidden
  files skipped) or a list of ``(name, array)`` pairs. Every reference is converted to (H, W, 3)
  uint8 RGB: greyscale is replicated to three channels, alpha is dropped (not composited, as
  MATLAB ``imread`` returns colour without alpha), palette and CMYK images are converted,
  16-bit greyscale is scaled to 8 bits, the first frame of a multi-page TIFF is used, and EXIF
  orientation is ignored (as ``imread`` does). The pristine copy written to the dataset is that
  RGB array as PNG, so pristine and distorted images always match pixel for pixel.
* **Names.** ``<stem>`` is the name up to its first ``.`` (``generate_kadis700k.m`` splits the
  same way), so ``I01.png`` -> ``I01``. Stems must be unique; the KADIS index lists the pristine
  file that was written (``<stem>.png``), even if the table named a ``.jpg``.
* **Seeds.** Each (reference, type, level) image gets its own seed from ``derive_seed(seed,
  stem, type, level)``: results depend on neither scheduling nor which references were already
  done. A folder records its run seed in ``synthesis.json`` and refuses to be resumed with a
  different one (the files already there would not match).
* **Resuming.** Every file is written atomically (see ``writers.py``). A reference is done when
  all its files exist; a rerun skips done references and fills in missing files of the others.
  The index is written last, atomically, and only when every reference is done, so an index
  never lists a missing file. A failed run writes no index; rerun the same command to resume.
* **Parallelism.** References are grouped into Ray tasks (one CPU each); at most ``num_cpus``
  tasks run at once (default: every CPU of the Ray cluster). ``ray.init`` is called only when
  Ray is not initialised yet. Folder references are read by the workers, so on a multi-node
  cluster the folder (and a local output folder) must be on storage every node sees.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .writers import DatasetWriter, LocalFolderWriter

KADID_INDEX = "dmos.csv"
KADIS_INDEX = "kadis700k_ref_imgs.csv"
SETTINGS_FILE = "synthesis.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
ALL_LEVELS = (1, 2, 3, 4, 5)

# Grouping: aim for about this many images per Ray task so that per-task overhead stays small
# for KADIS-style runs (6 files per reference), while a KADID-style reference (126 files) is a
# task of its own.
_IMAGES_PER_TASK = 100
# ... but keep at least this many tasks per concurrent slot so the last tasks don't leave
# cores idle and progress moves in small steps.
_TASKS_PER_SLOT = 4

References = str | os.PathLike[str] | Sequence[tuple[str, np.ndarray]]


class SynthesisError(RuntimeError):
    """A run stopped before every reference was done (the index was not written)."""


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """One pristine reference: a file read by the worker, or an array given by the caller."""

    name: str  # file name ("I01.png") or the name given with the array ("skimage_coffee_t00")
    path: str | None = None
    image: np.ndarray | None = None  # (H, W, 3) uint8 RGB when given as an array

    @property
    def stem(self) -> str:
        return self.name.split(".")[0]

    def load(self) -> np.ndarray:
        """The (H, W, 3) uint8 RGB pixels."""
        if self.image is not None:
            return self.image
        assert self.path is not None
        return load_rgb(self.path)


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: scale to 8 bits (Pillow's convert("RGB") would clip instead).
        grey = np.asarray(im).astype(np.float64) * (255.0 / 65535.0)
        grey = np.clip(np.round(grey), 0, 255).astype(np.uint8)  # (H, W)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if im.mode != "RGB":
        im = im.convert("RGB")  # L, LA, P, PA, RGBA, CMYK, YCbCr, 1, ... -> RGB, alpha dropped
    return np.asarray(im, dtype=np.uint8).copy()


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (conversions as described in the module doc)."""
    try:
        with Image.open(path) as im:
            im.seek(0)  # first frame of a multi-page TIFF
            im.load()
            return _pil_to_rgb(im)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"reference image '{path}' does not exist") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"couldn't decode reference image at '{path}': {e}") from e


def array_to_rgb(array: np.ndarray, what: str) -> np.ndarray:
    """Check a caller-given image and convert it to (H, W, 3) uint8 RGB (greyscale, RGBA ok)."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{what}: expected a numpy array, got {type(array).__name__}")
    if array.dtype != np.uint8:
        raise ValueError(f"{what}: expected dtype uint8, got {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"{what}: expected shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}"
        )
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def _check_name(name: object, position: int) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"refs[{position}]: expected a non-empty name string, got {name!r}")
    if "/" in name or "\\" in name or name.startswith(".") or name != name.strip():
        raise ValueError(
            f"refs[{position}]: name {name!r} must be a plain file name (no path separators, "
            f"no leading dot, no surrounding spaces)"
        )
    return name


def list_references(refs: References) -> list[Reference]:
    """Validate ``refs`` (a folder or ``(name, array)`` pairs) and list its references.

    Folder images are only listed here; workers decode them (an unreadable file stops the run
    with an error naming it, after the other running references finish).
    """
    if isinstance(refs, (str, os.PathLike)):
        folder = Path(refs).expanduser()
        if not folder.exists():
            raise FileNotFoundError(f"refs: reference folder '{folder}' does not exist")
        if not folder.is_dir():
            raise NotADirectoryError(f"refs: expected a folder of images, '{folder}' is a file")
        found = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not found:
            raise ValueError(
                f"refs: no reference images in '{folder}' (looked for files ending in "
                f"{', '.join(IMAGE_SUFFIXES)})"
            )
        listed = [Reference(name=p.name, path=str(p.resolve())) for p in found]
    else:
        if isinstance(refs, np.ndarray) or not isinstance(refs, Sequence):
            raise ValueError(
                f"refs: expected a folder path or a list of (name, array) pairs, got "
                f"{type(refs).__name__}"
            )
        if len(refs) == 0:
            raise ValueError("refs: the list of references is empty")
        listed = []
        for i, item in enumerate(refs):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise ValueError(f"refs[{i}]: expected a (name, array) pair, got {item!r:.80}")
            name = _check_name(item[0], i)
            listed.append(Reference(name=name, image=array_to_rgb(item[1], f"refs[{i}] {name!r}")))

    by_stem: dict[str, str] = {}
    for ref in listed:
        if ref.stem in by_stem:
            raise ValueError(
                f"refs: references {by_stem[ref.stem]!r} and {ref.name!r} share the stem "
                f"{ref.stem!r}, so their output files would collide; rename one"
            )
        by_stem[ref.stem] = ref.name
    return listed


# --------------------------------------------------------------------------------------------
# Settings: seeds, types, levels, KADIS table
# --------------------------------------------------------------------------------------------


def derive_seed(seed: int, stem: str, dist_type: int, level: int) -> int:
    """The seed of one output image: a stable 63-bit hash of (run seed, stem, type, level).

    blake2b rather than ``hash()`` so it is the same in every process and Python version.
    ``dist_type=0, level=0`` is the seed that draws a KADIS reference's random type.
    """
    key = f"dgqa-synthesis/{int(seed)}/{stem}/{int(dist_type)}/{int(level)}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 1


def resolve_types(types: Iterable[int | str] | None) -> tuple[int, ...]:
    """KADID ids (sorted, unique) from ids or names; None means all 25."""
    from dgqa_ray.distortions import DISTORTIONS, get_distortion

    if types is None:
        return tuple(d.dist_type for d in DISTORTIONS)
    if isinstance(types, (str, int)):
        types = [types]
    try:
        ids = sorted({get_distortion(t).dist_type for t in types})
    except ValueError as e:
        raise ValueError(f"types: {e}") from e
    if not ids:
        raise ValueError("types: expected at least one KADID id (1..25) or name, got none")
    return tuple(ids)


def _resolve_levels(levels: Iterable[int]) -> tuple[int, ...]:
    levels = list(levels)
    if not levels or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 5
        for v in levels
    ):
        raise ValueError(f"levels: expected integers in 1..5, got {levels!r}")
    return tuple(sorted({int(v) for v in levels}))


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")


def _check_num_cpus(num_cpus: int | None) -> None:
    if num_cpus is not None and (
        isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, np.integer)) or num_cpus < 1
    ):
        raise ValueError(f"num_cpus: expected a positive integer or None, got {num_cpus!r}")


def _parse_type_cell(text: str, column: str, where: str, required: bool) -> int | None:
    from dgqa_ray.distortions import NUM_TYPES

    text = text.strip()
    if not text or text.lower() in ("nan", "na"):
        if required:
            raise ValueError(f"{where}: {column} is empty; expected a KADID id 1..{NUM_TYPES}")
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value.is_integer() or not 1 <= value <= NUM_TYPES:
        raise ValueError(f"{where}: {column} must be a KADID id 1..{NUM_TYPES}, got {text!r}")
    return int(value)


@dataclass(frozen=True)
class KadisRow:
    """One row of a ``kadis700k_ref_imgs.csv``-style table."""

    ref_im: str
    dist_type_1: int
    dist_type_2: int | None
    line: int  # line in the CSV file (the header is line 1), for error messages


def read_kadis_table(path: str | os.PathLike[str]) -> list[KadisRow]:
    """Parse and check a table with columns ``ref_im, dist_type_1[, dist_type_2]``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"table: KADIS table '{path}' does not exist")
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, skipinitialspace=True, skip_blank_lines=False
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"table: couldn't parse '{path}' as CSV: {e}") from e
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("ref_im", "dist_type_1") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"table: '{path}' lacks column(s) {missing}; expected ref_im, dist_type_1, "
            f"dist_type_2, found {list(frame.columns)}"
        )
    rows: list[KadisRow] = []
    seen: dict[str, int] = {}
    for i, rec in enumerate(frame.to_dict("records")):
        line = i + 2  # 1-based, after the header line
        if not any(str(v).strip() for v in rec.values()):
            continue  # blank line
        ref_im = rec["ref_im"].strip()
        where = f"table '{path}' line {line} (ref_im {ref_im!r})"
        if not ref_im:
            raise ValueError(f"table '{path}' line {line}: ref_im is empty")
        if ref_im in seen:
            raise ValueError(f"{where}: ref_im repeats line {seen[ref_im]}")
        seen[ref_im] = line
        rows.append(
            KadisRow(
                ref_im=ref_im,
                dist_type_1=_parse_type_cell(rec["dist_type_1"], "dist_type_1", where, True),
                dist_type_2=_parse_type_cell(
                    rec.get("dist_type_2", ""), "dist_type_2", where, False
                ),
                line=line,
            )
        )
    if not rows:
        raise ValueError(f"table: '{path}' has a header but no rows")
    return rows


def _check_settings(writer: DatasetWriter, style: str, seed: int) -> None:
    """Refuse to resume a dataset made with another style or seed (its files would not match)."""
    wanted = {"style": style, "seed": int(seed)}
    text = writer.read_text(SETTINGS_FILE)
    if text is None:
        writer.write_text(SETTINGS_FILE, json.dumps(wanted, indent=2) + "\n")
        return
    try:
        found = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"out_dir: '{writer.describe(SETTINGS_FILE)}' is not valid JSON") from e
    for key, value in wanted.items():
        if found.get(key) != value:
            raise ValueError(
                f"out_dir: '{writer.describe()}' holds a {found.get('style')!r} dataset made with "
                f"seed {found.get('seed')!r}; this run asks for {style!r} with seed {seed}. "
                f"Use another output folder (or the same settings to resume)."
            )


# --------------------------------------------------------------------------------------------
# The per-reference work (runs in Ray workers; no Ray imports here)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Output:
    relpath: str
    format: str  # "png" | "bmp"
    dist_type: int  # 0 = the pristine reference
    level: int  # 0 for the pristine reference
    seed: int


@dataclass(frozen=True)
class _Job:
    ref: Reference
    outputs: tuple[_Output, ...]


def _synthesize_reference(job: _Job, writer: DatasetWriter) -> int:
    """Write the missing outputs of one reference; returns how many files it wrote."""
    from dgqa_ray import distortions

    todo = [out for out in job.outputs if not writer.exists(out.relpath)]
    if not todo:
        return 0
    image = job.ref.load()  # (H, W, 3) uint8
    for out in todo:
        if out.dist_type == 0:
            pixels = image
        else:
            pixels = distortions.apply(image, out.dist_type, out.level, seed=out.seed)
        writer.write_image(out.relpath, pixels, out.format)
    return len(todo)


def _synthesize_group(jobs: list[_Job], writer: DatasetWriter) -> list[dict]:
    """Run a few references; errors are returned (not raised) so the driver can report them."""
    results = []
    for job in jobs:
        try:
            written = _synthesize_reference(job, writer)
        except Exception as e:  # noqa: BLE001 - reported to the driver
            # Bad input (unreadable file, bad array) speaks for itself; anything else is a bug
            # whose traceback the driver shows.
            bad_input = isinstance(e, (ValueError, OSError))
            results.append(
                {
                    "name": job.ref.name,
                    "written": 0,
                    "error": f"{type(e).__name__}: {e}",
                    "traceback": "" if bad_input else traceback.format_exc(),
                }
            )
            break  # stop this group: the run is failing anyway
        results.append({"name": job.ref.name, "written": written, "error": None})
    return results


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthesisResult:
    """What a synthesis run produced."""

    style: str  # "kadid" | "kadis"
    out_dir: str  # where the dataset is
    index_path: str  # dmos.csv or kadis700k_ref_imgs.csv
    references: int  # references in the dataset
    references_skipped: int  # already complete before this run
    images: int  # image files in the dataset (pristine + distorted)
    images_written: int  # image files this run wrote
    seconds: float  # wall time of the run

    @property
    def images_per_second(self) -> float:
        return self.images_written / self.seconds if self.seconds > 0 else 0.0


def _progress_bar(label: str, total: int, skipped: int, enabled: bool):
    """A tqdm bar on stderr: references done / total, rate, ETA, images written (postfix)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=skipped,
        desc=f"[synthesize {label}] references",
        unit="ref",
        file=sys.stderr,
        disable=not enabled,
        mininterval=2.0,
        dynamic_ncols=True,
    )


def _init_ray(num_cpus: int | None):
    from dgqa_ray.ray_session import init_ray

    # On a cluster already running (RAY_ADDRESS, or one here), num_cpus does not size it: the
    # in-flight window below still caps concurrency at num_cpus.
    return init_ray(num_cpus, include_dashboard=False, log_to_driver=False)


def _run_jobs(
    jobs: list[_Job],
    writer: DatasetWriter,
    label: str,
    num_cpus: int | None,
    progress: bool,
) -> tuple[int, int]:
    """Run the jobs of references not yet complete; returns (skipped, images written)."""
    todo = [job for job in jobs if not all(writer.exists(o.relpath) for o in job.outputs)]
    skipped = len(jobs) - len(todo)
    if not todo:
        with _progress_bar(label, len(jobs), skipped, progress) as bar:
            bar.set_postfix_str(f"{skipped} already done")
        return skipped, 0

    ray = _init_ray(num_cpus)
    cluster_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    slots = min(num_cpus, cluster_cpus) if num_cpus else cluster_cpus
    # With num_cpus given, never queue more tasks than may run (each takes one CPU); else keep
    # Ray's queue a little ahead of the cluster.
    window = slots if num_cpus else 2 * slots
    per_ref = len(todo[0].outputs)
    group = max(
        1, min(math.ceil(_IMAGES_PER_TASK / per_ref), len(todo) // (_TASKS_PER_SLOT * slots))
    )
    groups = [todo[i : i + group] for i in range(0, len(todo), group)]

    task = ray.remote(num_cpus=1)(_synthesize_group)
    writer_ref = ray.put(writer)
    pending: dict = {}
    failures: list[dict] = []
    next_group = 0
    written = 0
    with _progress_bar(label, len(jobs), skipped, progress) as bar:
        bar.set_postfix_str(f"{skipped} already done", refresh=False)
        while pending or (next_group < len(groups) and not failures):
            while not failures and next_group < len(groups) and len(pending) < window:
                pending[task.remote(groups[next_group], writer_ref)] = groups[next_group]
                next_group += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for obj in ready:
                jobs_of_task = pending.pop(obj)
                try:
                    results = ray.get(obj)
                except ray.exceptions.RayError as e:  # worker died, out of memory, ...
                    names = ", ".join(j.ref.name for j in jobs_of_task)
                    failures.append({"name": names, "error": f"{type(e).__name__}: {e}"})
                    continue
                done = [r for r in results if r["error"] is None]
                failures.extend(r for r in results if r["error"] is not None)
                written += sum(r["written"] for r in done)
                bar.set_postfix_str(
                    f"{skipped} already done, {written} images written", refresh=False
                )
                bar.update(len(done))

    if failures:
        first = failures[0]
        detail = first.get("traceback", "")
        raise SynthesisError(
            f"synthesis stopped: {len(failures)} reference(s) failed, first {first['name']!r}: "
            f"{first['error']}. References completed so far are kept; the index was not "
            f"written. Fix the input and rerun the same command to resume."
            + (f"\nworker traceback:\n{detail}" if detail else "")
        )
    return skipped, written


def _check_unique_outputs(jobs: list[_Job]) -> None:
    """Refuse references whose files would overwrite each other (``x`` and ``x_01_02``)."""
    owner: dict[str, str] = {}
    for job in jobs:
        for out in job.outputs:
            other = owner.setdefault(out.relpath, job.ref.name)
            if other != job.ref.name:
                raise ValueError(
                    f"refs: references {other!r} and {job.ref.name!r} would both write "
                    f"{out.relpath!r}; rename one"
                )


def _as_writer(out_dir: str | os.PathLike[str] | DatasetWriter) -> DatasetWriter:
    if isinstance(out_dir, (str, os.PathLike)):
        return LocalFolderWriter(out_dir)
    if isinstance(out_dir, DatasetWriter):
        return out_dir
    raise ValueError(
        f"out_dir: expected a folder path or a DatasetWriter, got {type(out_dir).__name__}"
    )


def _finish(
    style: str,
    writer: DatasetWriter,
    jobs: list[_Job],
    index_name: str,
    index: pd.DataFrame,
    skipped: int,
    written: int,
    start: float,
) -> SynthesisResult:
    # Belt and braces: the index must never list a file that is not there.
    missing = [o.relpath for j in jobs for o in j.outputs if not writer.exists(o.relpath)]
    if missing:
        raise SynthesisError(
            f"synthesis finished but {len(missing)} file(s) are missing (first: "
            f"'{writer.describe(missing[0])}'); the index was not written"
        )
    writer.write_index(index_name, index)
    return SynthesisResult(
        style=style,
        out_dir=writer.describe(),
        index_path=writer.describe(index_name),
        references=len(jobs),
        references_skipped=skipped,
        images=sum(len(j.outputs) for j in jobs),
        images_written=written,
        seconds=time.monotonic() - start,
    )


def synthesize_kadid(
    refs: References,
    out_dir: str | os.PathLike[str] | DatasetWriter,
    *,
    types: Iterable[int | str] | None = None,
    levels: Iterable[int] = ALL_LEVELS,
    seed: int = 0,
    num_cpus: int | None = None,
    progress: bool = True,
) -> SynthesisResult:
    """Write a KADID-10k-style set: every reference x ``types`` x ``levels``.

    Args:
        refs: a folder of reference images or a list of ``(name, (H, W, 3) uint8)`` pairs.
        out_dir: output folder, or any ``DatasetWriter``.
        types: KADID ids (1..25) or names; None means all 25. Denoise (15) is the slow one.
        levels: distortion levels, 1 (mildest) .. 5.
        seed: run seed; each image's seed is ``derive_seed(seed, stem, type, level)``.
        num_cpus: at most this many references are processed at once (default: all CPUs).
        progress: print progress lines on stderr.

    Returns:
        A ``SynthesisResult``; the index is ``out_dir/dmos.csv``.
    """
    start = time.monotonic()
    type_ids, level_ids = resolve_types(types), _resolve_levels(levels)
    _check_seed(seed)
    _check_num_cpus(num_cpus)
    references = list_references(refs)
    jobs, rows = [], []
    for ref in references:
        pristine = f"{ref.stem}.png"
        outputs = [
            _Output(
                relpath=f"images/{ref.stem}_{t:02d}_{lvl:02d}.png",
                format="png",
                dist_type=t,
                level=lvl,
                seed=derive_seed(seed, ref.stem, t, lvl),
            )
            for t in type_ids
            for lvl in level_ids
        ]
        rows.extend((Path(o.relpath).name, pristine) for o in outputs)
        outputs.append(_Output(f"images/{pristine}", "png", 0, 0, 0))
        jobs.append(_Job(ref, tuple(outputs)))

    _check_unique_outputs(jobs)
    writer = _as_writer(out_dir)
    _check_settings(writer, "kadid", seed)
    skipped, written = _run_jobs(jobs, writer, "kadid", num_cpus, progress)
    index = pd.DataFrame(rows, columns=["dist_img", "ref_img"])
    index["dmos"] = np.nan  # no subjective scores for synthesized images
    index["var"] = np.nan
    return _finish("kadid", writer, jobs, KADID_INDEX, index, skipped, written, start)


def synthesize_kadis(
    refs: References,
    out_dir: str | os.PathLike[str] | DatasetWriter,
    *,
    table: str | os.PathLike[str] | None = None,
    types: Iterable[int | str] | None = None,
    levels: Iterable[int] = ALL_LEVELS,
    seed: int = 0,
    num_cpus: int | None = None,
    progress: bool = True,
) -> SynthesisResult:
    """Write a KADIS-700k-style set: every reference x one type x ``levels``, plus the pristine.

    Args:
        refs: a folder of reference images or a list of ``(name, (H, W, 3) uint8)`` pairs.
        out_dir: output folder, or any ``DatasetWriter``.
        table: a ``kadis700k_ref_imgs.csv``-style CSV (``ref_im, dist_type_1, dist_type_2``).
            Exactly its rows are synthesized, in its order; ``ref_im`` names a reference by its
            file name (array references: their name), or failing that by stem, so ``x.png``
            finds an array named ``x``. Only ``dist_type_1`` is generated,
            as in ``generate_kadis700k.m``. None: every reference gets a type drawn from
            ``types`` with ``derive_seed(seed, stem, 0, 0)``.
        types: the types to draw from when there is no table (None: all 25). Not allowed
            together with ``table``.
        levels: distortion levels, 1 (mildest) .. 5.
        seed, num_cpus, progress: as for ``synthesize_kadid``.

    Returns:
        A ``SynthesisResult``; the index is ``out_dir/kadis700k_ref_imgs.csv``.
    """
    start = time.monotonic()
    if table is not None and types is not None:
        raise ValueError("types: not allowed together with table (the table gives each type)")
    level_ids = _resolve_levels(levels)
    _check_seed(seed)
    _check_num_cpus(num_cpus)
    references = list_references(refs)

    if table is None:
        type_ids = resolve_types(types)
        plan = []
        for ref in references:
            rng = np.random.default_rng(derive_seed(seed, ref.stem, 0, 0))
            plan.append((ref, int(rng.choice(type_ids)), None))
    else:
        by_name = {r.name: r for r in references}
        by_stem = {r.stem: r for r in references}
        source = str(refs) if isinstance(refs, (str, os.PathLike)) else "the given references"
        plan = []
        for row in read_kadis_table(table):
            ref = by_name.get(row.ref_im) or by_stem.get(row.ref_im.split(".")[0])
            if ref is None:
                raise ValueError(
                    f"table '{table}' line {row.line}: ref_im {row.ref_im!r} is not among the "
                    f"references in {source}"
                )
            plan.append((ref, row.dist_type_1, row.dist_type_2))
        stems = [ref.stem for ref, _, _ in plan]
        if len(set(stems)) != len(stems):
            dup = next(s for s in stems if stems.count(s) > 1)
            raise ValueError(f"table '{table}': two rows name the reference with stem {dup!r}")

    jobs, rows = [], []
    for ref, dist_type, dist_type_2 in plan:
        outputs = [
            _Output(
                relpath=f"dist_imgs/{ref.stem}_{dist_type:02d}_{lvl:02d}.bmp",
                format="bmp",
                dist_type=dist_type,
                level=lvl,
                seed=derive_seed(seed, ref.stem, dist_type, lvl),
            )
            for lvl in level_ids
        ]
        outputs.append(_Output(f"ref_imgs/{ref.stem}.png", "png", 0, 0, 0))
        jobs.append(_Job(ref, tuple(outputs)))
        rows.append((f"{ref.stem}.png", dist_type, dist_type_2))

    _check_unique_outputs(jobs)
    writer = _as_writer(out_dir)
    _check_settings(writer, "kadis", seed)
    skipped, written = _run_jobs(jobs, writer, "kadis", num_cpus, progress)
    index = pd.DataFrame(rows, columns=["ref_im", "dist_type_1", "dist_type_2"])
    index = index.astype({"dist_type_1": "int64", "dist_type_2": "Int64"})  # 2nd may be empty
    return _finish("kadis", writer, jobs, KADIS_INDEX, index, skipped, written, start)
