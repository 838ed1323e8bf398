"""The recipe scorer of audits (engine/audit/scoring.py): predict's score, verdict and patch grid,
one image's record independent of its batch, bad files as error records, maps re-rendered from the
store."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audit.records import fast_hash
from engine.audit.scan import ArchiveScan
from engine.audit.scoring import BatchScorer, RecipeScorer, display_scale_from_meta, render_anomaly_map
from engine.images import read_image
from engine.model import InspectionModel
from tests.audit_support import fit_tiny_model, shared_tiny_model, write_archive


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("audit_scoring")
    model = shared_tiny_model(tmp_path_factory)
    write_archive(d / "arc", 9)
    (d / "arc/line0/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return model, list(ArchiveScan([d / "arc"]))


def _key(r):
    return (r.path, r.status, r.score, r.verdict, r.height, r.width, r.fast_hash,
            None if r.anomaly_grid is None else r.anomaly_grid.tobytes())


def test_records_are_predicts_results(tiny):
    model_path, files = tiny
    scorer = RecipeScorer(model_path, device="cpu")
    assert isinstance(scorer, BatchScorer) and scorer.mode == "recipe"
    good = [f for f in files if not f.path.endswith("broken.png")]
    recs = scorer.score_batch(good)
    model = InspectionModel.load(model_path, device="cpu")
    preds = model.predict([read_image(f.path) for f in good])
    for f, r, p in zip(good, recs, preds):
        assert (r.path, r.rel, r.group, r.size, r.mtime_ns) == (f.path, f.rel, f.group, f.size, f.mtime_ns)
        assert r.status == "scored" and r.score == p.score and r.verdict == p.verdict
        assert r.fast_hash == fast_hash(f.path) and (r.height, r.width) == (64, 64)
        np.testing.assert_array_equal(r.anomaly_grid, p.patch_scores.astype(np.float16))
    assert {r.verdict for r in recs} == {"OK", "NOK"}  # the dark squares are caught, the rest pass


def test_the_same_unit_gives_the_same_bits_and_other_batches_agree_to_rounding(tiny):
    """A work unit scored again (by a new scorer, as a Ray actor would) gives identical bits; the same
    image in another batch agrees to float32 rounding only (this CNN's arithmetic depends on the batch
    size), which is why both engines score the same units (engine.audit.runner.work_units)."""
    model_path, files = tiny
    good = [f for f in files if not f.path.endswith("broken.png")]
    first = [_key(r) for r in RecipeScorer(model_path, device="cpu").score_batch(good[:4])]
    again = [_key(r) for r in RecipeScorer(model_path, device="cpu").score_batch(good[:4])]
    assert first == again
    scorer = RecipeScorer(model_path, device="cpu")
    alone = [scorer.score_batch([f])[0] for f in good[:4]]
    together = scorer.score_batch(good[:4])
    for a, b in zip(alone, together):
        assert a.score == pytest.approx(b.score, rel=1e-5) and a.verdict == b.verdict
        np.testing.assert_allclose(a.anomaly_grid.astype(np.float32), b.anomaly_grid.astype(np.float32), rtol=2e-3)


def test_a_bad_file_is_an_error_record_and_its_batch_mates_are_unaffected(tiny):
    model_path, files = tiny
    scorer = RecipeScorer(model_path, device="cpu")
    broken = next(f for f in files if f.path.endswith("broken.png"))
    recs = scorer.score_batch(files)
    bad = recs[files.index(broken)]
    assert bad.status == "error" and bad.score is None and bad.anomaly_grid is None
    assert bad.error.startswith(broken.path) and "re-export" in bad.error and "\n" not in bad.error
    assert bad.fast_hash == fast_hash(broken.path)  # the key of the bad file: not retried unless it changes
    others = [f for f in files if f is not broken]
    assert [_key(r) for r in recs if r is not bad] == [_key(r) for r in scorer.score_batch(others)]


def test_maps_re_rendered_from_the_store_match_predicts(tiny, tmp_path):
    """With a region of interest: the grid's outside patches hold the median inside, and the map made
    from the meta and the float16 grid matches predict's map to float16 precision."""
    from engine.roi import RegionOfInterest

    model_path, files = tiny
    roi = RegionOfInterest(include=[[(8, 8), (55, 8), (55, 40), (8, 40)]], ref_width=64, ref_height=64)
    roi_model = fit_tiny_model(tmp_path, roi=roi)
    for path in (model_path, roi_model):
        scorer = RecipeScorer(path, device="cpu")
        meta = scorer.meta()
        f = next(f for f in files if not f.path.endswith("broken.png"))
        rec = scorer.score_batch([f])[0]
        model = InspectionModel.load(path, device="cpu")
        pred = model.predict([read_image(f.path)])[0]
        assert rec.score == pred.score
        amap = render_anomaly_map(meta, rec.anomaly_grid, (rec.height, rec.width))
        assert amap.shape == pred.anomaly_map.shape == (64, 64)
        np.testing.assert_allclose(amap, pred.anomaly_map, rtol=2e-3, atol=2e-3 * float(pred.anomaly_map.max()))
        scale, expect = display_scale_from_meta(meta), model.display_scale()
        assert (scale.floor, scale.anchor, scale.threshold) == (expect.floor, expect.anchor, expect.threshold)
        assert meta["threshold"] == model.threshold and meta["image_size"] == 64 and meta["patch_size"] == 8
    outside = ~roi.pixel_mask(64, 64)
    assert np.ptp(amap[outside]) == 0  # one fill value outside the region, as predict makes it
    assert meta["map"]["roi"] is not None and meta["calibration_scores"]
