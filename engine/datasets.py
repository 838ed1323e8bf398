"""Datasets in the MVTec AD folder layout, and plain folders.

Layout (Bergmann et al., "MVTec AD", CVPR 2019)::

    <category>/train/good/*                       normal images to learn from
    <category>/test/good/*                        normal test images
    <category>/test/<defect>/*                    defective test images
    <category>/ground_truth/<defect>/<stem>_mask.png   binary masks {0, 255}
    (also accepted: ground_truth/<defect>/<stem>.png, as battery_weld names them)

A defective test image whose mask is absent gets ``mask_path=None``; pixel metrics then use only
images that have masks (good images have an all-zero mask by definition). Entries of ``train/good``
and ``test/<folder>`` that are not taken (not an image type, sub-folders...) are kept in
``Category.skipped`` with their reason (:mod:`engine.listing`), for the report to say.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import DatasetError
from .listing import list_images


@dataclass(frozen=True)
class Sample:
    """One image of a dataset split.

    Attributes:
        path: the image file.
        label: 0 = good, 1 = defective.
        defect_type: ``"good"`` or the defect folder's name.
        mask_path: ground-truth mask file, or None (good images, or mask absent).
    """

    path: Path
    label: int
    defect_type: str
    mask_path: Path | None = None


@dataclass(frozen=True)
class Category:
    """A category folder in MVTec AD layout: ``train`` (good only) and ``test`` samples.

    ``title`` names a category built from elsewhere (the demo's package data); by default the
    category is named after its folder. ``skipped``: ``(path, reason)`` of every entry of the
    image folders that was not taken (:class:`engine.listing.ImageList`)."""

    root: Path
    train: list[Sample]
    test: list[Sample]
    title: str | None = None
    skipped: list = field(default_factory=list)

    def skipped_summary(self) -> str:
        """One line on the skipped entries (:meth:`engine.listing.ImageList.skipped_summary`), or ``""``."""
        from .listing import ImageList

        return ImageList(skipped=self.skipped).skipped_summary()

    @property
    def name(self) -> str:
        """The display name: ``title`` or the folder's name."""
        return self.title or self.root.name

    @property
    def has_masks(self) -> bool:
        return any(s.mask_path is not None for s in self.test)


def _find_mask(gt_dir: Path, stem: str) -> Path | None:
    for name in (f"{stem}_mask.png", f"{stem}.png", f"{stem}_mask.bmp", f"{stem}.bmp"):
        p = gt_dir / name
        if p.is_file():
            return p
    return None


def load_category(root: str | Path) -> Category:
    """Index a category folder in MVTec AD layout (no image is decoded here).

    Raises:
        DatasetError: ``train/good`` or ``test`` is missing or empty.
    """
    root = Path(root)
    train_dir = root / "train" / "good"
    test_dir = root / "test"
    if not train_dir.is_dir():
        raise DatasetError(
            f"{root}: no train/good folder. Expected the MVTec AD layout "
            f"<category>/train/good, <category>/test/<good|defect>, <category>/ground_truth/<defect>."
        )
    if not test_dir.is_dir():
        raise DatasetError(f"{root}: no test folder (expected test/good and test/<defect>).")
    try:
        listing = list_images(train_dir)
    except DatasetError as exc:  # the layout has no option to search deeper: say where images must be
        raise DatasetError(f"{exc} (MVTec AD layout: the good training images sit directly in "
                           f"{train_dir}, not in its sub-folders)") from None
    train = [Sample(p, 0, "good") for p in listing]
    skipped = list(listing.skipped)
    test: list[Sample] = []
    for sub in sorted(test_dir.iterdir()):
        if not sub.is_dir():
            skipped.append((sub, "not in a test/<good|defect> folder"))
            continue
        files = list_images(sub, allow_empty=True)
        skipped += files.skipped
        if sub.name == "good":
            test.extend(Sample(p, 0, "good") for p in files)
        else:
            gt_dir = root / "ground_truth" / sub.name
            test.extend(Sample(p, 1, sub.name, _find_mask(gt_dir, p.stem)) for p in files)
    if not test:
        raise DatasetError(f"{test_dir}: no test images.")
    return Category(root=root, train=train, test=test, skipped=skipped)


def find_categories(root: str | Path) -> list[Path]:
    """All folders below ``root`` (depth <= 2) that have the MVTec AD layout, sorted."""
    root = Path(root)
    if (root / "train" / "good").is_dir():
        return [root]
    found = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if (d / "train" / "good").is_dir():
            found.append(d)
        elif d.is_dir():
            found.extend(sorted(e for e in d.iterdir() if (e / "train" / "good").is_dir()))
    return found
