"""Datasets in the MVTec AD folder layout, and plain folders.

Layout (Bergmann et al., "MVTec AD", CVPR 2019)::

    <category>/train/good/*                       normal images to learn from
    <category>/test/good/*                        normal test images
    <category>/test/<defect>/*                    defective test images
    <category>/ground_truth/<defect>/<stem>_mask.png   binary masks {0, 255}
    (also accepted: <stem>.png as battery_weld names them, <stem>_label.png, <stem>_gt.png, and
    .bmp/.tif/.tiff/.jpg/.jpeg masks: :data:`MASK_STEMS`, :data:`MASK_SUFFIXES`)

A defective test image whose mask is absent gets ``mask_path=None``; pixel metrics then use only
images that have masks (good images have an all-zero mask by definition). Entries of ``train/good``
and ``test/<folder>`` that are not taken (not an image type, sub-folders...) are kept in
``Category.skipped`` with their reason (:mod:`engine.listing`), for the report to say. How mask values become defect pixels:
:func:`engine.images.read_mask`.
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


MASK_STEMS = ("{stem}_mask", "{stem}", "{stem}_label", "{stem}_gt")
"""Names a ground-truth mask of test image ``<stem>.*`` may have in ``ground_truth/<defect>/``, in the
order tried: MVTec AD's ``_mask``, battery_weld's bare stem, KolektorSDD/DAGM-style ``_label``, ``_gt``."""

MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")
"""Mask file types tried for each name of :data:`MASK_STEMS` (lossless first)."""


def _find_mask(gt_dir: Path, stem: str) -> Path | None:
    if not gt_dir.is_dir():
        return None
    for name in MASK_STEMS:
        for suffix in MASK_SUFFIXES:
            for suf in (suffix, suffix.upper()):
                p = gt_dir / (name.format(stem=stem) + suf)
                if p.is_file():
                    return p
    return None


def check_mask_sizes(cat: "Category") -> list[str]:
    """Check, before any work, that every mask of ``cat`` can be laid on its test image.

    Reads only the file headers (Pillow's lazy open). A mask of another size but the same aspect
    ratio (within 1 %) is accepted -- :func:`engine.images.read_mask` resizes it nearest-neighbour --
    and named in the returned list.

    Returns:
        one line per mask that will be resized: ``"<mask>: 256x256 px, image 512x512 px"``.
    Raises:
        DatasetError: a mask that cannot be opened, or whose aspect ratio differs from its image's
            (one line naming the mask, both sizes and the fix). An unreadable *image* is not raised
            here: inspection skips and reports it.
    """
    from PIL import Image

    resized = []
    for s in cat.test:
        if s.mask_path is None:
            continue
        try:
            with Image.open(s.mask_path) as m:
                mw, mh = m.size
        except (OSError, ValueError, SyntaxError) as exc:
            raise DatasetError(f"{s.mask_path}: cannot read mask ({exc}); re-export it as a PNG of 0 (good) and "
                               f"255 (defect), or remove it (the image then counts for image metrics only).") from None
        try:
            with Image.open(s.path) as im:
                w, h = im.size
        except (OSError, ValueError, SyntaxError):
            continue
        if (mw, mh) == (w, h):
            continue
        if abs(mh * w - mw * h) > 0.01 * max(mh * w, mw * h):
            raise DatasetError(f"{s.mask_path}: mask is {mw}x{mh} px but its image {s.path.name} is {w}x{h} px "
                               f"(another aspect ratio, so it cannot be scaled onto the image); re-export the mask "
                               f"at {w}x{h} px.")
        resized.append(f"{s.mask_path}: {mw}x{mh} px, image {w}x{h} px")
    return resized


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
