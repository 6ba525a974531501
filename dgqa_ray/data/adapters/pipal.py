"""PIPAL (NTIRE 2021 public training part): 200 references x 116 distorted versions, Elo scores.

Layout (as downloaded)::

    <root>/Train_Label/A0001.txt ...  one line per distorted image: A0001_00_00.bmp,1447.57
    <root>/Train_Dist/                the distorted images, directly or in subfolders (the
                                      download splits them into Distortion_1 .. Distortion_4)
    <root>/Train_Ref/A0001.bmp ...    the references (only read with include_references=True)

Scores are Elo ratings (about 900..1900), higher is better; kept as ``mos``, min-max normalised
like every other dataset.

File names are ``<ref>_<bb>_<cc>``. The PIPAL maintainer states (HaomingCai/PIPAL-dataset issue
#13, Dec 2025) that ``bb`` is the distortion *class* (e.g. all GAN-based SR outputs share one
``bb``) and ``cc`` the specific distortion within the class, pointing to Table 10 of the journal
version (arXiv:2011.15002). Which ``bb`` is which class is not stated in the release; the mapping
below is the one proposed in that issue thread and independently derived elsewhere by matching
the number of ``cc`` values per class against the sub-type counts of Table 10:

    00 traditional SR          -> traditional_sr            (paper: PIPAL-1)
    01 PSNR-oriented SR        -> psnr_originated_sr        (PIPAL-2)
    02 SR with kernel mismatch -> sr_kernel_mismatch        (PIPAL-3)
    03 GAN-based SR            -> gan_based_sr              (PIPAL-4)
    04 denoising               -> denoising                 (PIPAL-5)
    05 SR and denoising joint  -> sr_and_denoising_joint    (PIPAL-6)
    06 traditional distortions -> traditional_distortions   (not a DGQA target)

The names are those of the DGQA paper's Table 4 (``reference/paper_table4_pipal.csv``). This
mapping is an inference from public sources, not an official table: ``subtype_map`` overrides
it, and any other class id becomes ``class_<bb>`` rather than a guess. PIPAL's classes are not
KADID types, so ``dist_type``/``dist_level`` are null and the class is kept in ``subset``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dgqa_ray import storage

from ..errors import DatasetError
from .base import Adapter, stem

# Class id (the middle token of the file name) -> sub-type name; see the module docstring for
# where this comes from and how sure it is.
PIPAL_SUBTYPES: dict[str, str] = {
    "00": "traditional_sr",
    "01": "psnr_originated_sr",
    "02": "sr_kernel_mismatch",
    "03": "gan_based_sr",
    "04": "denoising",
    "05": "sr_and_denoising_joint",
    "06": "traditional_distortions",
}

# The paper's six algorithmic targets, PIPAL-1 .. PIPAL-6 in its Tables 2 and 4.
PAPER_TARGETS: dict[str, str] = {f"pipal-{i}": PIPAL_SUBTYPES[f"{i - 1:02d}"] for i in range(1, 7)}

REFERENCE_SUBSET = "reference"
DISTORTED_NAME = re.compile(r"^(?P<ref>.+)_(?P<cls>\d+)_(?P<var>\d+)$")


def subtype_of(class_id: str, subtype_map: Mapping[str, str] = PIPAL_SUBTYPES) -> str:
    """Sub-type name for a class id ('03' -> 'gan_based_sr'); unknown ids -> 'class_<id>'."""
    return subtype_map.get(class_id, f"class_{class_id}")


class PipalAdapter(Adapter):
    """PIPAL, restoration-algorithm outputs with Elo scores; six sub-types are DGQA targets."""

    name = "pipal"
    index_file = "Train_Label"
    scale = "Elo rating (about 900..1900), higher is better"
    higher_is_better = True

    def __init__(
        self,
        root: str,
        *,
        subtypes: Sequence[str] | None = None,
        include_references: bool = False,
        subtype_map: Mapping[str, str] | None = None,
        labels_dir: str = "Train_Label",
        dist_dir: str = "Train_Dist",
        refs_dir: str = "Train_Ref",
    ) -> None:
        """``subtypes``: keep only these sub-types (names as in PIPAL_SUBTYPES; default all),
        scores are then normalised over the rows kept, as the authors normalise "within the set
        used"; ``include_references``: add the references as unlabelled rows (dist_type 0,
        subset "reference"); ``subtype_map``: class id -> name, replacing PIPAL_SUBTYPES;
        ``labels_dir``/``dist_dir``/``refs_dir``: the folders, relative to ``root``."""
        super().__init__(root)
        mapping = PIPAL_SUBTYPES if subtype_map is None else subtype_map
        # Keys as the file names spell them ("03"); a YAML/CLI override may give 3 or "3".
        self.subtype_map = {
            (f"{int(k):02d}" if str(k).strip().isdigit() else str(k)): str(v)
            for k, v in mapping.items()
        }
        if subtypes is not None:
            if isinstance(subtypes, str):
                subtypes = [subtypes]
            known = sorted(set(self.subtype_map.values()))
            unknown = [s for s in subtypes if s not in known and not s.startswith("class_")]
            if unknown:
                raise ValueError(
                    f"Invalid subtypes {unknown}. Only {', '.join(known)} (or class_<id>) "
                    "are supported."
                )
            subtypes = list(subtypes)
        self.subtypes = subtypes
        self.include_references = include_references
        self.labels_dir = labels_dir
        self.dist_dir = dist_dir
        self.refs_dir = refs_dir

    def _label_files(self) -> list[str]:
        folder = self.uri(self.labels_dir)
        files = storage.list_files(folder, suffixes=[".txt"])
        if not files:
            raise self.error(
                f"no label files (*.txt) found; a pipal root is expected to contain "
                f"{self.labels_dir}/A0001.txt ... with lines like A0001_00_00.bmp,1447.57",
                file=folder,
            )
        return files

    def _parse_labels(self, files: list[str]) -> pd.DataFrame:
        names, scores, sources, rows = [], [], [], []
        for file in files:
            text = storage.read_bytes(file).decode("utf-8-sig", errors="replace")
            for line_no, line in enumerate(text.splitlines(), start=1):
                line = line.strip()
                if not line:
                    continue
                parts = [p.strip() for p in line.split(",")]
                if len(parts) != 2 or not parts[0]:
                    raise self.error(
                        f"expected '<image name>,<score>' (e.g. A0001_00_00.bmp,1447.57), "
                        f"found {line!r}",
                        file=file,
                        row=line_no,
                    )
                try:
                    score = float(parts[1])
                except ValueError:
                    score = np.nan
                if not np.isfinite(score):
                    raise self.error(
                        f"the score must be a number, found {parts[1]!r} in {line!r}",
                        file=file,
                        row=line_no,
                    )
                if DISTORTED_NAME.match(stem(parts[0])) is None:
                    raise self.error(
                        f"image name {parts[0]!r} is not <ref>_<class>_<variant>.<ext> "
                        "(e.g. A0001_00_00.bmp)",
                        file=file,
                        row=line_no,
                    )
                names.append(parts[0])
                scores.append(score)
                sources.append(file)
                rows.append(line_no)
        return pd.DataFrame({"name": names, "mos": scores, "file": sources, "_row": rows})

    def _read(self) -> pd.DataFrame:
        files = self._label_files()
        labels = self._parse_labels(files)
        if labels.empty:
            raise DatasetError(
                f"the {len(files)} label file(s) hold no lines",
                dataset=self.name,
                file=self.uri(self.labels_dir),
            )
        parsed = [DISTORTED_NAME.match(stem(n)) for n in labels["name"]]
        labels["image_id"] = [stem(n) for n in labels["name"]]
        labels["ref_id"] = [m["ref"] for m in parsed]
        labels["subset"] = [subtype_of(m["cls"], self.subtype_map) for m in parsed]
        if self.subtypes is not None:
            labels = labels[labels["subset"].isin(self.subtypes)].reset_index(drop=True)
        if labels.empty:
            return pd.DataFrame(columns=["image_id", "ref_id", "path"])
        images = self.list_images(self.dist_dir)
        # Every missing image in one error, each named with its own label file and line.
        try:
            paths = images.resolve(
                labels["name"].tolist(),
                index_file=self.uri(self.labels_dir),
                rows=labels["_row"].tolist(),
                sources=labels["file"].tolist(),
                search_subfolders=True,
            )
        except DatasetError as e:
            hint = self._dist_dir_hint(labels["name"].head(20).tolist())
            if hint is None:
                raise
            raise DatasetError(f"{e}; {hint}") from None
        labels["path"] = paths
        out = labels[["image_id", "ref_id", "subset", "mos", "path"]]
        if self.include_references:
            out = pd.concat([out, self._references(sorted(set(out["ref_id"])))], ignore_index=True)
        return out

    def _dist_dir_hint(self, names: list[str]) -> str | None:
        """Where the labelled images are, when not in ``dist_dir``: the top-level folder of
        ``root`` that holds most of ``names`` (the downloads differ: Train_Dist, Distortion_1..4,
        ...), as an option to pass; None when no other folder holds them."""
        listing = self.list_images("")
        wanted = set(names)
        counts: dict[str, int] = {}
        for rel in listing.by_relpath:
            if rel.rsplit("/", 1)[-1] in wanted and "/" in rel:
                top = rel.split("/", 1)[0]
                if top != self.dist_dir:
                    counts[top] = counts.get(top, 0) + 1
        if not counts:
            return None
        best = max(counts, key=counts.get)
        return (
            f"they are under {self.uri(best)} instead of {self.uri(self.dist_dir)}: pass "
            f"dist_dir={best!r} (jobs/ingest.py --option dist_dir={best}, or "
            f"data.<role>_options.dist_dir in the config)"
        )

    def _references(self, ref_ids: list[str]) -> pd.DataFrame:
        refs = self.list_images(self.refs_dir)
        # References are <ref>.bmp in the release; accept any image suffix.
        by_stem: dict[str, str] = {}
        for rel, uri in sorted(refs.by_relpath.items()):
            by_stem.setdefault(stem(rel), uri)
        missing = [ref for ref in ref_ids if ref not in by_stem]
        paths = [by_stem.get(ref, "") for ref in ref_ids]
        if missing:
            raise self.error(
                f"{len(missing)} reference image(s) missing, e.g. {missing[:5]} "
                "(include_references=True needs them)",
                file=refs.folder,
            )
        return pd.DataFrame(
            {
                "image_id": ref_ids,
                "ref_id": ref_ids,
                "dist_type": 0,
                "subset": REFERENCE_SUBSET,
                "mos": np.nan,
                "path": paths,
            }
        )
