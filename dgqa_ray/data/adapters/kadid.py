"""KADID-10k: 81 pristine images x 25 distortion types x 5 levels, 10,125 rated images.

Layout (as downloaded)::

    <root>/dmos.csv         dist_img,ref_img,dmos,var   e.g. I01_01_01.png,I01.png,4.57,0.496
    <root>/images/          I01_01_01.png ... (the pristine I01.png ... sit here too)

``dmos`` is the mean of the degradation category ratings on 1..5 where *higher is better*
(despite the name, not a difference score), so it is kept as ``mos`` and normalised without a
flip. A ``dmos`` column that is empty in every row (what ``jobs/synthesize.py --style kadid``
writes) gives an unlabelled set: mos/score null; some rows empty is an error. ``dist_type``/``dist_level`` come from the file name ``<ref>_<TT>_<LL>``: the type ids are
those of ``reference/kadid_distortions.csv``.
"""

from __future__ import annotations

import re
from typing import ClassVar

import pandas as pd

from .base import Adapter, numeric_column, stem, text_column

# <ref>_<type>_<level>, e.g. I01_01_01 (the ref part may itself contain underscores elsewhere).
DISTORTED_NAME = re.compile(r"^(?P<ref>.+)_(?P<type>\d{1,2})_(?P<level>\d{1,2})$")
NUM_TYPES = 25
NUM_LEVELS = 5


def parse_distorted_name(name: str) -> tuple[str, int, int] | None:
    """'I01_03_05.png' -> ('I01', 3, 5); None when the name does not follow the pattern or the
    type/level is out of range (1..25, 1..5)."""
    match = DISTORTED_NAME.match(stem(name))
    if match is None:
        return None
    dist_type, level = int(match["type"]), int(match["level"])
    if not (1 <= dist_type <= NUM_TYPES and 1 <= level <= NUM_LEVELS):
        return None
    return match["ref"], dist_type, level


class KadidAdapter(Adapter):
    """KADID-10k, rated synthetic distortions: the labelled *source* domain of DGQA."""

    name = "kadid10k"
    index_file = "dmos.csv"
    scale = "DMOS 1..5 (mean degradation category rating), higher is better"
    higher_is_better = True
    columns: ClassVar[tuple[str, ...]] = ("dist_img", "ref_img", "dmos")

    def __init__(self, root: str, *, images_dir: str = "images") -> None:
        """``images_dir``: the folder of the image files, relative to ``root``."""
        super().__init__(root)
        self.images_dir = images_dir

    def _read(self) -> pd.DataFrame:
        file, table = self.read_csv(self.index_file, self.columns)
        names = text_column(table, "dist_img", dataset=self.name, file=file)
        refs = text_column(table, "ref_img", dataset=self.name, file=file)
        # This project's synthesis job writes the same dmos.csv with dmos left empty (no
        # subjective scores exist for synthesized images): all-empty means an unlabelled set.
        # Some rows empty and others not is a damaged file, reported by numeric_column.
        unlabelled = table["dmos"].isna().all()
        mos = numeric_column(table, "dmos", dataset=self.name, file=file, allow_empty=unlabelled)
        parsed = []
        for name, row in zip(names, table["_row"], strict=True):
            info = parse_distorted_name(name)
            if info is None:
                raise self.error(
                    f"dist_img {name!r} is not named <ref>_<type>_<level>.<ext> with type "
                    f"1..{NUM_TYPES} and level 1..{NUM_LEVELS} (e.g. I01_03_05.png)",
                    file=file,
                    row=int(row),
                )
            parsed.append(info)
        images = self.list_images(self.images_dir)
        paths = images.resolve(list(names), index_file=file, rows=table["_row"].tolist())
        return pd.DataFrame(
            {
                "image_id": [stem(n) for n in names],
                # The ref_img column is the dataset's own statement of content; the name prefix
                # agrees with it in the release, and the column wins if a copy disagrees.
                "ref_id": [stem(r) for r in refs],
                "dist_type": [p[1] for p in parsed],
                "dist_level": [p[2] for p in parsed],
                "mos": mos,
                "path": paths,
            }
        )
