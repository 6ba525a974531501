"""SPAQ (Smartphone Photography Attribute and Quality): 11,125 smartphone photos.

Layout (as downloaded)::

    <root>/Annotations/MOS and Image attribute scores.xlsx
        Image name, MOS, Brightness, Colorfulness, Contrast, Noisiness, Sharpness
    <root>/TestImage/     00001.jpg ... (full camera resolution)

``MOS`` is on 0..100, higher is better. Images are kept at their published resolution (the SPAQ
authors resize the short side to 512 before training; that is a pipeline choice, not the
adapter's). Authentic photos: ``ref_id`` is the image's own id, no type or level.
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd

from .base import Adapter, numeric_column, stem, text_column


class SpaqAdapter(Adapter):
    """SPAQ smartphone photos, authentic distortions: a target domain."""

    name = "spaq"
    index_file = "Annotations/MOS and Image attribute scores.xlsx"
    scale = "MOS 0..100, higher is better"
    higher_is_better = True
    columns: ClassVar[tuple[str, ...]] = ("Image name", "MOS")

    def __init__(self, root: str, *, images_dir: str = "TestImage") -> None:
        """``images_dir``: the folder of the image files, relative to ``root``."""
        super().__init__(root)
        self.images_dir = images_dir

    def _read(self) -> pd.DataFrame:
        file, table = self.read_excel(self.index_file, self.columns)
        names = text_column(table, "Image name", dataset=self.name, file=file)
        mos = numeric_column(table, "MOS", dataset=self.name, file=file)
        images = self.list_images(self.images_dir)
        paths = images.resolve(list(names), index_file=file, rows=table["_row"].tolist())
        ids = [stem(n) for n in names]
        return pd.DataFrame({"image_id": ids, "ref_id": ids, "mos": mos, "path": paths})
