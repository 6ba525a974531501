"""KADIS-700k: 140,000 pristine images, each distorted by one KADID type at 5 levels; no ratings.

Layout::

    <root>/kadis700k_ref_imgs.csv   ref_im,dist_type_1,dist_type_2   (type 2 mostly empty)
    <root>/ref_imgs/                the pristine images named in ref_im
    <root>/dist_imgs/               generated distorted images <ref stem>_<TT>_<LL>.bmp
                                    (present once the generator has run; may be absent)

The release ships only the references and a MATLAB generator; the distorted images exist once
someone has run it (or this project's synthesis job). Rows: every reference as pristine
(``dist_type`` 0, ``dist_level`` null) plus every distorted image found, whose type and level
come from its name. ``ref_id`` is the reference's file stem for both, so splits keep a
reference and its distortions together. KADIS is the domain classifier's training set, so
``mos``/``score`` are null.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .base import Adapter, stem, text_column
from .kadid import NUM_LEVELS, NUM_TYPES

_MAX_SHOWN = 5
# [subfolders/]<ref stem>_<TT>_<LL>.<ext>, as the generator names its outputs.
DISTORTED_RELPATH = r"^(?:.*/)?(?P<stem>(?P<ref>.+)_(?P<type>\d{1,2})_(?P<level>\d{1,2}))\.[^./]+$"


class KadisAdapter(Adapter):
    """KADIS-700k references plus the generated distorted images (unlabelled)."""

    name = "kadis700k"
    index_file = "kadis700k_ref_imgs.csv"
    scale = "unlabelled (mos and score are null)"
    labelled = False
    columns: ClassVar[tuple[str, ...]] = ("ref_im",)

    def __init__(
        self,
        root: str,
        *,
        include_references: bool = True,
        include_distorted: bool = True,
        refs_dir: str = "ref_imgs",
        dist_dir: str = "dist_imgs",
    ) -> None:
        """``include_references``: rows for the pristine images (dist_type 0);
        ``include_distorted``: rows for the images found in ``dist_dir`` (none if it is absent);
        ``refs_dir``/``dist_dir``: the two image folders, relative to ``root``."""
        super().__init__(root)
        if not (include_references or include_distorted):
            raise ValueError(
                "include_references and include_distorted are both False: nothing to index; "
                "set at least one to True"
            )
        self.include_references = include_references
        self.include_distorted = include_distorted
        self.refs_dir = refs_dir
        self.dist_dir = dist_dir

    def _read(self) -> pd.DataFrame:
        file, table = self.read_csv(self.index_file, self.columns)
        ref_names = text_column(table, "ref_im", dataset=self.name, file=file)
        ref_stems = [stem(n) for n in ref_names]
        frames = []
        if self.include_references:
            refs = self.list_images(self.refs_dir)
            paths = refs.resolve(list(ref_names), index_file=file, rows=table["_row"].tolist())
            frames.append(
                pd.DataFrame(
                    {
                        "image_id": ref_stems,
                        "ref_id": ref_stems,
                        "dist_type": 0,
                        "dist_level": pd.NA,
                        "path": paths,
                    }
                )
            )
        if self.include_distorted:
            frames.append(self._distorted(set(ref_stems)))
        frames = [f for f in frames if len(f)]
        if not frames:  # finalise_index reports the empty dataset
            return pd.DataFrame(columns=["image_id", "ref_id", "path"])
        return pd.concat(frames, ignore_index=True)

    def _distorted(self, known_refs: set[str]) -> pd.DataFrame:
        folder = self.list_images(self.dist_dir)
        relpaths = sorted(folder.by_relpath)
        if not relpaths:
            return pd.DataFrame(columns=["image_id", "ref_id", "dist_type", "dist_level", "path"])
        # Vectorised in Arrow (RE2): the real set has 700,000 names, and a Python loop or
        # pandas' str.extract costs seconds per pass.
        names = pa.array(relpaths, type=pa.string())
        parts = pc.extract_regex(names, DISTORTED_RELPATH)  # struct; null where no match
        matched = parts.is_valid()
        stems = pc.struct_field(parts, "stem")
        refs = pc.struct_field(parts, "ref")
        dist_type = pc.cast(pc.struct_field(parts, "type"), pa.int16())
        level = pc.cast(pc.struct_field(parts, "level"), pa.int16())
        ok = pc.and_kleene(
            matched,
            pc.and_kleene(
                pc.and_kleene(pc.greater_equal(dist_type, 1), pc.less_equal(dist_type, NUM_TYPES)),
                pc.and_kleene(pc.greater_equal(level, 1), pc.less_equal(level, NUM_LEVELS)),
            ),
        )
        ok = pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
        if not ok.all():
            bad = [relpaths[i] for i in np.flatnonzero(~ok)]
            raise self.error(
                f"{len(bad)} file(s) are not named <ref>_<type>_<level>.<ext> with type "
                f"1..{NUM_TYPES} and level 1..{NUM_LEVELS}, e.g. {bad[:_MAX_SHOWN]}",
                file=folder.folder,
            )
        known = pc.is_in(refs, value_set=pa.array(sorted(known_refs), type=pa.string()))
        known = pc.fill_null(known, False).to_numpy(zero_copy_only=False)
        if not known.all():
            unknown = [relpaths[i] for i in np.flatnonzero(~known)]
            raise self.error(
                f"{len(unknown)} distorted image(s) name a reference that "
                f"{self.index_file} does not list, e.g. {unknown[:_MAX_SHOWN]}",
                file=folder.folder,
            )
        return pd.DataFrame(
            {
                "image_id": stems.to_numpy(zero_copy_only=False),
                "ref_id": refs.to_numpy(zero_copy_only=False),
                "dist_type": dist_type.to_numpy(zero_copy_only=False),
                "dist_level": level.to_numpy(zero_copy_only=False),
                "path": [folder.by_relpath[r] for r in relpaths],
            }
        )
