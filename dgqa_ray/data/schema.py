"""The one table every dataset becomes after ingestion (Parquet shards, see ``shards.py``).

Adapters (``adapters/``) produce an *index*: the columns below except the three image columns,
plus ``path`` (where the encoded image file lives, a local path or ``s3://`` URI). Ingestion
reads each file, checks it decodes, and fills ``image``, ``width`` and ``height``.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

# dist_type: 0 = pristine, 1..25 = KADID types, null = unknown (authentic datasets).
SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),  # unique within a dataset
        pa.field("dataset", pa.string(), nullable=False),  # "kadid10k", "livec", ...
        pa.field("ref_id", pa.string(), nullable=False),  # content id: splits group by it
        pa.field("dist_type", pa.int16()),
        pa.field("dist_level", pa.int16()),  # 1..5, null when not synthetic
        pa.field("subset", pa.string()),  # e.g. PIPAL sub-type; null when none
        pa.field("mos", pa.float64()),  # score as published (scale per dataset); null if unlabeled
        pa.field(
            "score", pa.float64()
        ),  # normalised to [0, 10], higher is better; null if unlabeled
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("image", pa.binary(), nullable=False),  # encoded file bytes (PNG, JPEG, BMP, ...)
    ]
)

INDEX_COLUMNS = [
    "image_id",
    "dataset",
    "ref_id",
    "dist_type",
    "dist_level",
    "subset",
    "mos",
    "score",
    "path",
]
