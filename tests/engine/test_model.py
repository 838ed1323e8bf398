"""InspectionModel on synthetic parts: fit, predict, save/load, bad input."""

import json
import os

import numpy as np
import pytest

from engine.datasets import load_category
from engine.errors import DatasetError, ModelFileError
from engine.evaluate import evaluate_category
from engine.images import read_image
from engine.model import InspectionModel
from engine.modelfile import FORMAT_VERSION, load_model_file, save_model_file


@pytest.fixture(scope="module")
def effnet_model():
    return lambda: InspectionModel.create("efficientnet_lite0", "knn", size=64, device="cpu",
                                          scorer_params={"coreset_ratio": 0.5})


def test_fit_predict_save_load_round_trip(synthetic_mvtec, effnet_model, tmp_path):
    cat = load_category(synthetic_mvtec)
    m = effnet_model()
    rep = m.fit([s.path for s in cat.train])
    assert rep.n_fit == 12 and rep.n_holdout == 0 and rep.n_calibration == 12 and m.threshold is not None  # cross-fit
    imgs = [read_image(s.path) for s in cat.test]
    preds = m.predict(imgs)
    assert preds[0].anomaly_map.shape == (64, 64) and preds[0].anomaly_map.dtype == np.float32
    assert all(p.latency_ms > 0 for p in preds)
    path = tmp_path / "toy.dimodel"
    m.save(path)
    m2 = InspectionModel.load(path, device="cpu")
    preds2 = m2.predict(imgs)
    np.testing.assert_allclose([p.score for p in preds2], [p.score for p in preds], rtol=1e-5)
    assert m2.threshold == m.threshold and m2.backbone.weights_sha256 == m.backbone.weights_sha256
    cfg, _ = load_model_file(path)
    assert cfg["backbone"]["name"] == "efficientnet_lite0"
    assert len(cfg["provenance"]["images"]) == rep.n_fit and cfg["provenance"]["program_version"]


def test_defect_scores_above_good_on_toy_parts(synthetic_mvtec, effnet_model):
    res = evaluate_category(synthetic_mvtec, effnet_model())
    assert res["metrics"]["image_auroc"] >= 0.75  # pasted blocks on a smooth texture
    assert res["metrics"]["pixel_auroc"] > 0.8
    assert res["backbone"]["name"] == "efficientnet_lite0"


def test_evaluate_writes_report(synthetic_mvtec, effnet_model, tmp_path):
    evaluate_category(synthetic_mvtec, effnet_model(), report_dir=tmp_path / "r", n_examples=3)
    data = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert "image_auroc" in data["metrics"] and data["backbone"]["weights_source"].startswith("package:")
    assert "efficientnet_lite0" in (tmp_path / "r" / "summary.md").read_text()
    assert len(list((tmp_path / "r" / "overlays").glob("*.png"))) == 3


def test_unreadable_training_image_is_skipped_and_reported(synthetic_mvtec, effnet_model):
    bad = synthetic_mvtec / "train" / "good" / "zz_corrupt.png"
    bad.write_bytes(b"not an image")
    m = effnet_model()
    paths = sorted((synthetic_mvtec / "train" / "good").iterdir())
    rep = m.fit(paths)
    assert rep.n_fit + rep.n_holdout == 12 and any("zz_corrupt.png" in s for s in rep.skipped)


def test_predict_paths_reports_bad_file_and_continues(synthetic_mvtec, effnet_model, tmp_path):
    m = effnet_model()
    m.fit(sorted((synthetic_mvtec / "train" / "good").iterdir()))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 broken")
    good = sorted((synthetic_mvtec / "test" / "good").iterdir())[:2]
    out = list(m.predict_paths([good[0], bad, good[1]]))
    assert [o[0] for o in out] == [good[0], bad, good[1]]
    assert out[1][1] is None and "bad.jpg" in out[1][3]
    assert out[0][1] is not None and out[2][1] is not None


def test_fit_refuses_when_nothing_is_readable(tmp_path, effnet_model):
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="none of the 3 images"):
        effnet_model().fit(sorted(tmp_path.iterdir()))


def test_model_file_errors(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model_file(tmp_path / "none.dimodel")
    (tmp_path / "junk.dimodel").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFileError, match="damaged"):
        load_model_file(tmp_path / "junk.dimodel")
    save_model_file(tmp_path / "new.dimodel", {"x": 1}, {"a": np.zeros(2, np.float32)})
    raw = (tmp_path / "new.dimodel").read_bytes()
    newer = raw.replace(f'"format_version":"{FORMAT_VERSION}"'.encode(), b'"format_version":"9"')
    assert newer != raw
    (tmp_path / "newer.dimodel").write_bytes(newer)
    with pytest.raises(ModelFileError, match="newer"):
        load_model_file(tmp_path / "newer.dimodel")


def test_model_file_checksum_refuses_changed_array_bytes_and_keeps_permissions(tmp_path):
    bank = np.arange(1000, dtype=np.float32).reshape(100, 10)
    path = tmp_path / "m.dimodel"
    save_model_file(path, {"x": 1}, {"scorer/memory_bank": bank})
    config, arrays = load_model_file(path)
    assert config == {"x": 1} and np.array_equal(arrays["scorer/memory_bank"], bank)
    raw = bytearray(path.read_bytes())
    # flip one byte inside the array data (the last bytes of the file are the last array element)
    raw[-3] ^= 0xFF
    (tmp_path / "flipped.dimodel").write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model_file(tmp_path / "flipped.dimodel")
    with pytest.raises(ModelFileError, match="is a folder"):
        load_model_file(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_fit_with_one_readable_image_names_the_unreadable_one(tmp_path, effnet_model):
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "note.png").write_text("not an image")
    with pytest.raises(DatasetError, match=r"got 1 of 2; unreadable: .*note\.png"):
        effnet_model().fit(sorted(tmp_path.iterdir()))
