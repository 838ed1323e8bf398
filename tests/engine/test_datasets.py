import pytest

from engine.datasets import find_categories, load_category
from engine.errors import DatasetError


def test_mvtec_layout_is_indexed_with_masks(synthetic_mvtec):
    cat = load_category(synthetic_mvtec)
    assert len(cat.train) == 12 and len(cat.test) == 8
    bad = [s for s in cat.test if s.label == 1]
    assert len(bad) == 4 and all(s.mask_path is not None and s.mask_path.name.endswith("_mask.png") for s in bad)
    assert all(s.mask_path is None for s in cat.test if s.label == 0)
    assert find_categories(synthetic_mvtec.parent) == [synthetic_mvtec]


def test_masks_named_like_the_image_are_found(synthetic_mvtec):
    gt = synthetic_mvtec / "ground_truth" / "scratch"
    for p in gt.iterdir():
        p.rename(gt / p.name.replace("_mask", ""))
    cat = load_category(synthetic_mvtec)
    assert all(s.mask_path is not None for s in cat.test if s.label == 1)


def test_missing_train_folder_names_the_layout(tmp_path):
    with pytest.raises(DatasetError, match="train/good"):
        load_category(tmp_path)
