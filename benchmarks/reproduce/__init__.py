"""Reproduce the paper's ablations (Tables 1-3) on Fashion-MNIST, cell by cell.

Run it as ``python benchmarks/reproduce --budget cpu`` (see ``__main__.py``).
The modules, one job each:

- :mod:`.paper`: the paper's published figures, as data;
- :mod:`.methods`: what each method name means as estimator settings;
- :mod:`.budgets`: the cells of each budget (iterations, sets, networks, epochs);
- :mod:`.records`: where the results live and how they are read and written;
- :mod:`.runner`: fits or loads each set, evaluates it, saves each finished cell;
- :mod:`.report`: ``tables.md`` from the saved cells (it fits nothing);
- :mod:`.plots`: the report's charts;
- ``__main__``: the command line.

Importing the package puts ``benchmarks/`` (for the shared ``_common``
module) and the repository root (for the checkout's ``gradmatch``) first on
``sys.path``, as the other benchmark scripts do.
"""

from __future__ import annotations

import sys
from pathlib import Path

for _folder in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
