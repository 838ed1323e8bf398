"""Fitted-model files: one ``.safetensors`` file per model, never executing code when loaded.

Layout: tensors are the scorer's numpy arrays (``scorer/<name>``) and any extra arrays
(``extra/<name>``); the safetensors header's ``__metadata__`` holds

* ``format`` = ``"dinoinspect-model"``, ``format_version`` (int as text);
* ``config``: JSON with backbone name, weight source and SHA-256, layers, preprocessing, scorer
  name and hyper-parameters, image-score rule, threshold and how it was chosen, provenance
  (images used, date, program version).

A file of a newer ``format_version`` or a damaged file raises :class:`ModelFileError`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import ModelFileError

FORMAT = "dinoinspect-model"
FORMAT_VERSION = 1


def save_model_file(path: str | Path, config: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``config`` (JSON-able) and ``arrays`` atomically (temp file + rename)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "config": json.dumps(config)}
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata=meta)
    tmp.replace(path)


def load_model_file(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a model file -> ``(config, arrays)``.

    Raises:
        ModelFileError: missing, damaged, not a DINOInspect model, or of a newer format.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found. Fit one with `python main.py fit`.")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - any decode failure means a damaged file
        raise ModelFileError(
            f"{path}: damaged or not a model file ({type(exc).__name__}: {exc}). Re-fit the model or "
            f"restore the file from a backup."
        ) from exc
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a DINOInspect model file (format={meta.get('format')!r}).")
    try:
        version = int(meta.get("format_version", "0"))
        config = json.loads(meta["config"])
    except (ValueError, KeyError) as exc:
        raise ModelFileError(f"{path}: damaged model header ({exc}). Re-fit the model.") from exc
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format {version} is newer than this program understands "
            f"({FORMAT_VERSION}). Update DINOInspect."
        )
    return config, arrays
