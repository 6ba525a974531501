"""The one error type for bad dataset input, so callers can catch it apart from bugs.

A dataset is user input: an index file that is missing, a column spelled differently, a score
that is not a number, an image the index lists but the folder lacks. Each of those is reported
as a :class:`DatasetError` whose message names the dataset, the file and (where there is one) the
row, so that the person who has to fix the file knows where to look without a debugger.
"""

from __future__ import annotations


class DatasetError(ValueError):
    """Bad dataset input; the message says which dataset, which file and which row.

    Subclasses ``ValueError`` so code that already treats bad values generically keeps working.
    The parts are also kept as attributes (``dataset``, ``file``, ``row``; ``None`` when not
    applicable) for callers that want to report them in their own format.

    ``row`` is the row as the file shows it: the line number of a CSV/text file and the row
    number of a spreadsheet (the header being row 1), or the 1-based entry of a MATLAB array.
    """

    def __init__(
        self,
        message: str,
        *,
        dataset: str | None = None,
        file: str | None = None,
        row: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.file = file
        self.row = row
        self.detail = message
        where = [part for part in (dataset, file) if part]
        if row is not None:
            where.append(f"row {row}")
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
