"""Where a run keeps what it finished, and how those files are read and written.

Layout under the results folder ``out``:

- ``cells/<key>.json``: a cell's record, ``{"key", "budget", "sets": [...]}``,
  one entry per scored set (its seed, every network's accuracy, the fit's and
  the evaluation's seconds, the machine); ``cells/whole-<E>ep.json``: the
  whole-training-set reference after E epochs;
- ``sets/<stem>-set<s>.npz``: every set made (:func:`gradmatch.io.save_set`);
- ``checkpoints/``: condensations in progress (ignored by git);
- ``tables.md`` and the ``*.png`` charts: the report.
"""

from __future__ import annotations

import json
from pathlib import Path

from gradmatch.atomic import write_text_atomic


def cell_record_path(out: Path, key: str) -> Path:
    """The record file of the cell (or reference) called ``key``."""
    return out / "cells" / f"{key}.json"


def set_path(out: Path, stem: str, index: int) -> Path:
    """The file of set number ``index`` (from 0) of the sets called ``stem``."""
    return out / "sets" / f"{stem}-set{index}.npz"


def read_record(path: Path) -> dict | None:
    """The record at ``path``, or None when there is none yet."""
    return json.loads(path.read_text()) if path.exists() else None


def write_record(path: Path, record: dict) -> None:
    """Write ``record`` to ``path`` atomically (a crash leaves the previous record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=1))


def whole_set_records(out: Path) -> list[dict]:
    """Every whole-training-set reference recorded in ``out``, by file name."""
    folder = out / "cells"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("whole-*.json"))] if folder.exists() else []
