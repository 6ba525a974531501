"""BID (Blurred Image Database, Ciancio et al. 2011): 586 photos with realistic blur.

Layout (as downloaded; the images sit in one or more subfolders depending on the copy)::

    <root>/DatabaseGrades.xlsx      Image Number, Average Subjective Grade  (+ other columns)
    <root>/**/DatabaseImage0001.JPG  one file per Image Number, anywhere under the root

The workbook is looked for at the root first, then anywhere under it. Images are found by name
(``DatabaseImage%04d.JPG``, case-insensitive) in any subfolder. The grade is on 0..5, higher is
better. Authentic photos: ``ref_id`` is the image's own id, no type or level.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from dgqa_ray import storage

from .base import Adapter, numeric_column, stem

IMAGE_NAME = "DatabaseImage{:04d}.JPG"


class BidAdapter(Adapter):
    """BID, realistic blur in authentic photos: a DGQA target domain."""

    name = "bid"
    index_file = "DatabaseGrades.xlsx"
    scale = "average subjective grade 0..5, higher is better"
    higher_is_better = True
    columns: ClassVar[tuple[str, ...]] = ("Image Number", "Average Subjective Grade")

    def _find_workbook(self) -> str:
        if storage.exists(self.uri(self.index_file)):
            return self.index_file
        # Some copies nest everything one folder down (e.g. BID/BID/...): search once.
        wanted = self.index_file.lower()
        for uri in storage.list_files(self.root, suffixes=[".xlsx"]):
            if uri.rsplit("/", 1)[-1].lower() == wanted:
                return uri[len(self.root) :].lstrip("/")
        return self.index_file  # read_excel then reports it missing, with the expected layout

    def _read(self) -> pd.DataFrame:
        file, table = self.read_excel(self._find_workbook(), self.columns)
        numbers = numeric_column(table, "Image Number", dataset=self.name, file=file)
        not_integer = np.flatnonzero((numbers != np.round(numbers)) | (numbers < 0))
        if len(not_integer):
            first = not_integer[0]
            raise self.error(
                "column 'Image Number' must hold whole numbers (DatabaseImage%04d.JPG), found "
                f"{table['Image Number'].iloc[first]!r}",
                file=file,
                row=int(table["_row"].iloc[first]),
            )
        mos = numeric_column(table, "Average Subjective Grade", dataset=self.name, file=file)
        names = [IMAGE_NAME.format(int(n)) for n in numbers]
        images = self.list_images("")
        paths = images.resolve(
            names, index_file=file, rows=table["_row"].tolist(), search_subfolders=True
        )
        ids = [stem(n) for n in names]
        return pd.DataFrame({"image_id": ids, "ref_id": ids, "mos": mos, "path": paths})
