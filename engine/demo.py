"""The out-of-the-box demo on real images shipped by PyPI: solar-cell electroluminescence (ELPV).

Data: ``elpv-dataset`` (Buerhop-Lutz et al., 2018; Deitsch et al., 2019): 2,624 300x300 grayscale
cells with a defect probability from experts (0, 1/3, 2/3, 1) and the cell type (mono / poly).
The demo uses monocrystalline cells: it learns from ``n_train`` functional cells (probability 0),
then inspects ``n_test_good`` other functional cells and ``n_test_defective`` cells rated
defective with probability >= 2/3. There are no pixel masks, so only image metrics are reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .datasets import Category, Sample
from .errors import DatasetError


_REINSTALL = ("reinstall the package (pip install --force-reinstall elpv-dataset) or, in the packaged program, "
              "rebuild it with the demo data")


def elpv_root() -> Path:
    """The folder of the ELPV images and ``labels.csv`` of the installed ``elpv-dataset`` package
    (in a packaged program: the collected copy of its data).

    Raises:
        DatasetError: the package is not installed, or its ``labels.csv`` is missing.
    """
    try:
        import elpv_dataset
    except ImportError:
        raise DatasetError("the demo needs the PyPI package elpv-dataset: pip install elpv-dataset (in the packaged "
                           "program: rebuild it with the demo data)") from None
    root = Path(elpv_dataset.__file__).parent / "data"
    if not (root / "labels.csv").is_file():
        raise DatasetError(f"{root / 'labels.csv'} not found: the demo data is missing; {_REINSTALL}")
    return root


def elpv_category(n_train: int = 150, n_test_good: int = 60, n_test_defective: int = 60, cell_type: str = "mono",
                  seed: int = 0) -> Category:
    """Build a :class:`Category` from the installed ``elpv-dataset`` package (module docstring).

    Raises:
        DatasetError: the package is not installed, its data is missing or unreadable, or it holds
            too few cells.
    """
    root = elpv_root()
    try:
        rows = np.genfromtxt(root / "labels.csv", dtype=["U32", "f8", "U8"], names=["path", "prob", "type"])
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{root / 'labels.csv'}: cannot read the demo's labels ({exc}); {_REINSTALL}") from None
    rows = rows[rows["type"] == cell_type]
    good = [root / p for p in rows[rows["prob"] == 0]["path"]]
    bad = [root / p for p in rows[rows["prob"] >= 0.6]["path"]]
    rng = np.random.default_rng(seed)
    good = [good[i] for i in rng.permutation(len(good))]
    bad = [bad[i] for i in rng.permutation(len(bad))]
    if len(good) < n_train + n_test_good or len(bad) < n_test_defective:
        raise DatasetError(f"elpv-dataset has too few {cell_type} cells for the requested split.")
    train = [Sample(p, 0, "good") for p in sorted(good[:n_train])]
    test = [Sample(p, 0, "good") for p in sorted(good[n_train:n_train + n_test_good])]
    test += [Sample(p, 1, "defective") for p in sorted(bad[:n_test_defective])]
    return Category(root=root, train=train, test=test, title=f"ELPV solar cells ({cell_type}crystalline)")
