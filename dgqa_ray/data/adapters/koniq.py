"""KonIQ-10k: 10,073 authentic photos from YFCC100m, rated by crowd workers.

Layout (as downloaded)::

    <root>/koniq10k_scores_and_distributions.csv
        image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore
    <root>/512x384/       the images at the resolution the paper and most methods use
    <root>/1024x768/      (optional) the full-resolution release

``MOS`` is on 1..5 (higher is better) and is what is kept as ``mos``; ``mos_column="MOS_zscore"``
uses the z-scored 0..100 column instead (the two correlate at ~0.99). ``resolution`` picks the
image folder. Authentic photos: ``ref_id`` is the image's own id, no type or level.
"""

from __future__ import annotations

import pandas as pd

from .base import Adapter, numeric_column, stem, text_column

RESOLUTIONS = ("512x384", "1024x768")
MOS_COLUMNS = ("MOS", "MOS_zscore")


class KoniqAdapter(Adapter):
    """KonIQ-10k, authentic distortions: a DGQA target domain."""

    name = "koniq10k"
    index_file = "koniq10k_scores_and_distributions.csv"
    scale = "MOS 1..5 (or MOS_zscore 0..100), higher is better"
    higher_is_better = True

    def __init__(self, root: str, *, resolution: str = "512x384", mos_column: str = "MOS") -> None:
        """``resolution``: image folder, one of 512x384 (default, as in the paper) or 1024x768;
        ``mos_column``: MOS (default) or MOS_zscore."""
        super().__init__(root)
        if resolution not in RESOLUTIONS:
            raise ValueError(
                f"Invalid resolution {resolution!r}. Only {', '.join(RESOLUTIONS)} are supported."
            )
        if mos_column not in MOS_COLUMNS:
            raise ValueError(
                f"Invalid mos_column {mos_column!r}. Only {', '.join(MOS_COLUMNS)} are supported."
            )
        self.resolution = resolution
        self.mos_column = mos_column

    def _read(self) -> pd.DataFrame:
        file, table = self.read_csv(self.index_file, ("image_name", self.mos_column))
        names = text_column(table, "image_name", dataset=self.name, file=file)
        mos = numeric_column(table, self.mos_column, dataset=self.name, file=file)
        images = self.list_images(self.resolution)
        paths = images.resolve(list(names), index_file=file, rows=table["_row"].tolist())
        ids = [stem(n) for n in names]
        return pd.DataFrame({"image_id": ids, "ref_id": ids, "mos": mos, "path": paths})
