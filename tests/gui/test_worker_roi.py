"""The worker's fit honours a recipe's region of interest (RecipeSpec.roi) and model_info shows it."""

from engine.model import InspectionModel
from engine.roi import RegionOfInterest
from gui.recipes import RecipeSpec
from gui.worker import InspectionWorker


def test_fit_sets_the_recipes_region_on_the_model(qtbot, toy_images, tmp_path):
    roi = RegionOfInterest(include=[[(0, 0), (40, 0), (40, 63), (0, 63)]], exclude=[[(2, 2), (9, 2), (9, 9)]],
                           ref_width=64, ref_height=64)
    target = tmp_path / "roi.dimodel"
    spec = RecipeSpec(good_folder=str(toy_images), model_path=str(target), backbone="efficientnet_lite0", size=64,
                      roi=roi.to_json())
    worker = InspectionWorker(device="cpu")
    infos, failures = [], []
    worker.model_loaded.connect(infos.append)
    worker.error_occurred.connect(lambda *a: failures.append(a))
    worker.fit(1, spec)  # called directly: runs in this thread
    assert not failures and len(infos) == 1
    assert infos[0]["roi"] == roi.to_json() and "roi=1 include, 1 exclude" in infos[0]["describe"]
    assert InspectionModel.load(target, device="cpu").roi == roi
    spec_whole = RecipeSpec(good_folder=str(toy_images), model_path=str(tmp_path / "whole.dimodel"),
                            backbone="efficientnet_lite0", size=64)
    worker.fit(2, spec_whole)
    assert not failures and len(infos) == 2 and infos[-1]["roi"] is None
