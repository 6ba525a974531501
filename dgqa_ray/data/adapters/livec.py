"""LIVE In the Wild Image Quality Challenge (LIVEC / CLIVE): 1,162 authentic photos.

Layout (as downloaded)::

    <root>/Data/AllImages_release.mat   variable AllImages_release: cell array of file names
    <root>/Data/AllMOS_release.mat      variable AllMOS_release: MOS per entry, same order
    <root>/Images/                      the images (the 7 training images in Images/trainingImages/)

The first 7 entries of both arrays are the study's training images and are dropped, as every
paper using LIVEC does, leaving 1,162. MOS is on 0..100, higher is better. Authentic photos have
no reference: ``ref_id`` is the image's own id and ``dist_type``/``dist_level`` are null.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import scipy.io

from .base import Adapter, stem

# The study's 7 training images open both arrays; they are not part of the benchmark.
NUM_TRAINING_ENTRIES = 7


class LivecAdapter(Adapter):
    """LIVEC (LIVE In the Wild Challenge), authentic distortions: a DGQA target domain."""

    name = "livec"
    index_file = "Data/AllMOS_release.mat"
    names_file = "Data/AllImages_release.mat"
    scale = "MOS 0..100, higher is better"
    higher_is_better = True

    def __init__(self, root: str, *, images_dir: str = "Images") -> None:
        """``images_dir``: the folder of the image files, relative to ``root``."""
        super().__init__(root)
        self.images_dir = images_dir

    def _load_mat_variable(self, relpath: str) -> tuple[str, np.ndarray]:
        uri, data = self.read_index_bytes(relpath)
        variable = relpath.rsplit("/", 1)[-1].rsplit(".", 1)[0]  # named as the file
        try:
            contents = scipy.io.loadmat(io.BytesIO(data))
        except Exception as e:  # scipy raises ValueError/TypeError/MatReadError for non-.mat
            raise self.error(
                f"could not read as a MATLAB .mat file: {type(e).__name__}: {e}", file=uri
            ) from e
        if variable not in contents:
            found = sorted(k for k in contents if not k.startswith("__"))
            raise self.error(f"variable {variable!r} not found; variables found: {found}", file=uri)
        return uri, np.asarray(contents[variable])

    def _read(self) -> pd.DataFrame:
        names_uri, names_raw = self._load_mat_variable(self.names_file)
        mos_uri, mos_raw = self._load_mat_variable(self.index_file)
        names = [_cell_text(cell) for cell in names_raw.ravel()]
        if len(names) != mos_raw.size:
            raise self.error(
                f"{names_uri} lists {len(names)} images but {mos_uri} has {mos_raw.size} "
                "scores; both arrays must have one entry per image, in the same order",
                file=mos_uri,
            )
        try:
            mos = mos_raw.astype(np.float64).ravel()
        except (TypeError, ValueError) as e:
            raise self.error(
                f"AllMOS_release must be a numeric array, found dtype {mos_raw.dtype}",
                file=mos_uri,
            ) from e
        entries = np.arange(1, len(names) + 1)  # MATLAB's 1-based entry numbers, for messages
        bad = [i for i, value in enumerate(mos) if not np.isfinite(value)]
        if bad:
            raise self.error(
                f"entry {entries[bad[0]]} of AllMOS_release is {mos[bad[0]]}, not a number "
                f"({len(bad)} bad entries)",
                file=mos_uri,
                row=int(entries[bad[0]]),
            )
        empty = [i for i, n in enumerate(names) if not n]
        if empty:
            raise self.error(
                f"entry {entries[empty[0]]} of AllImages_release has no file name",
                file=names_uri,
                row=int(entries[empty[0]]),
            )
        names = names[NUM_TRAINING_ENTRIES:]
        mos = mos[NUM_TRAINING_ENTRIES:]
        entries = entries[NUM_TRAINING_ENTRIES:]
        images = self.list_images(self.images_dir)
        paths = images.resolve(names, index_file=names_uri, rows=entries.tolist())
        ids = [stem(n) for n in names]
        return pd.DataFrame({"image_id": ids, "ref_id": ids, "mos": mos, "path": paths})


def _cell_text(cell: object) -> str:
    """One element of a MATLAB cell array of strings, as loadmat returns it, -> str.

    loadmat gives each cell as a 1-element array of str (``array(['t1.bmp'])``), sometimes
    nested one level deeper; an empty cell is an empty array.
    """
    while isinstance(cell, np.ndarray):
        if cell.size == 0:
            return ""
        cell = cell.ravel()[0]
    return str(cell).strip()
