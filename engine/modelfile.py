"""Fitted-model files: one ``.safetensors`` file per model, never executing code when loaded.

Layout: tensors are the scorer's numpy arrays (``scorer/<name>``) and any extra arrays
(``extra/<name>``); the safetensors header's ``__metadata__`` holds

* ``format`` = ``"dinoinspect-model"``, ``format_version`` (int as text);
* ``config``: JSON with backbone name, weight source and SHA-256, layers, preprocessing, scorer
  name and hyper-parameters, image-score rule, threshold and how it was chosen, provenance
  (images used, date, program version);
* ``sha256``: SHA-256 over the config text and every array (name, dtype, shape, bytes; names in
  sorted order), checked on load, so damaged bytes inside the arrays -- which safetensors itself
  cannot notice -- are refused instead of silently changing the scores. Files written before the
  checksum existed load without the check.

A file of a newer ``format_version`` or a damaged file raises :class:`ModelFileError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .app_info import cli_command
from .errors import ModelFileError
from .outputs import os_reason

FORMAT = "dinoinspect-model"
FORMAT_VERSION = 1


def content_sha256(config_text: str, arrays: dict[str, np.ndarray]) -> str:
    """Hex SHA-256 of a model's config text and arrays (module docstring)."""
    h = hashlib.sha256(config_text.encode("utf-8"))
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"\0{k}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_model_file(path: str | Path, config: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``config`` (JSON-able) and ``arrays`` with a content checksum, never leaving a half-written
    model: the bytes go to a hidden temporary file in the same folder, are flushed to the disk
    (fsync) and renamed over ``path`` in one step, then the folder is synced
    (:func:`engine.outputs.replace_atomically`). A failure or a killed process before the rename
    leaves an existing ``path`` exactly as it was. The file gets the usual permissions of a new file
    (umask), readable by the station's other users where the umask allows it.

    The file is serialised in memory first (``safetensors.numpy.save``, about the arrays' size in
    extra memory for a moment) and written by Python, so a write error reaches the caller as the
    OSError the system gave (ENOSPC, EFBIG, EACCES...): ``safetensors.numpy.save_file`` can lose a
    write error of its last buffered bytes (measured: writing to /dev/full raised nothing).

    Raises:
        OSError: the file cannot be written; ``path`` is unchanged.
    """
    from safetensors.numpy import save

    from .outputs import replace_atomically

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    text = json.dumps(config)
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "config": text,
            "sha256": content_sha256(text, arrays)}
    data = save(arrays, metadata=meta)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    replace_atomically(path, write)


def keep_backup(path: str | Path) -> Path | None:
    """Keep an existing model file as ``<name>.bak`` (one generation) before it is replaced.

    The backup is a second name for the same bytes (a hard link, made under a temporary name and
    renamed over the old backup, so it takes no space and is never half-made); where the file system
    has no hard links, a copy written the same safe way (:func:`engine.outputs.replace_atomically`).
    Returns the backup's path, or None when ``path`` did not exist.

    Raises:
        OSError: the backup cannot be made; the model file and any older backup are unchanged.
    """
    import shutil
    import tempfile

    from .outputs import fsync_folder, replace_atomically

    path = Path(path)
    if not path.is_file():
        return None
    backup = path.with_name(path.name + ".bak")
    tmp = Path(tempfile.mktemp(prefix=f".{backup.name}.", suffix=".tmp", dir=str(path.parent)))
    try:
        os.link(path, tmp)
    except OSError:
        replace_atomically(backup, lambda t: shutil.copyfile(path, t))
        return backup
    try:
        os.replace(tmp, backup)
    finally:
        tmp.unlink(missing_ok=True)  # left only when the backup already was this very file (a no-op rename)
    fsync_folder(path.parent)
    return backup


def _first_bytes(path: Path) -> bytes:
    """The first 8 bytes; ModelFileError for an unreadable or empty file."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the model file ({os_reason(exc)}). Check its "
                             f"permissions.") from None
    if not head:
        raise ModelFileError(f"{path}: empty file (0 bytes): it was not written completely. Re-fit the model or "
                             f"restore it from its backup ({path.name}.bak).")
    return head


def _refuse_foreign(path: Path, head: bytes) -> None:
    """Raise ModelFileError for a pickle or a zip (PyTorch) archive, told by its first bytes (called
    once safetensors has refused the file, so a model whose header length happens to start alike is
    never mistaken for one). Nothing is unpickled."""
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        what = "a Python pickle"
    elif head[:4] == b"PK\x03\x04":
        what = "a zip archive (a PyTorch .pt/.pth checkpoint?)"
    else:
        return
    raise ModelFileError(f"{path}: {what}, not a DINOInspect model file; it is not opened (such files can run "
                         f"code when loaded). Give a .dimodel written by `{cli_command()} fit`; backbone weights go "
                         f"to --weights of fit.")


def load_model_file(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a model file -> ``(config, arrays)``. Nothing in it is executed: safetensors reads a
    JSON header and raw arrays only; a pickle or PyTorch archive given as a model fails that and is
    named as such from its first bytes, never unpickled.

    Raises:
        ModelFileError: missing, a folder, empty, damaged (truncated, bits flipped: the content
            checksum), a pickle / PyTorch file, a safetensors file of another tool, or of a newer
            format; the one-line message names the file and what to do.
    """
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder; give the model file itself (e.g. {path / 'model.dimodel'}).")
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found. Fit one with `{cli_command()} fit`.")
    head = _first_bytes(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - any decode failure means a damaged file
        _refuse_foreign(path, head)
        detail = " ".join(str(exc).split())[:200]
        raise ModelFileError(
            f"{path}: damaged or not a model file ({type(exc).__name__}: {detail}). Re-fit the model or "
            f"restore the file from a backup."
        ) from exc
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: a safetensors file, but not a DINOInspect model (its header has format="
                             f"{meta.get('format')!r}, expected {FORMAT!r}; written by another tool?). Give a file "
                             f"written by `{cli_command()} fit` or the app's recipes.")
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError as exc:
        raise ModelFileError(f"{path}: damaged model header ({exc}). Re-fit the model.") from exc
    if version > FORMAT_VERSION:  # before reading the config: a newer format may lay it out otherwise
        raise ModelFileError(
            f"{path}: model file format {version} is newer than this program understands "
            f"({FORMAT_VERSION}). Update DINOInspect."
        )
    try:
        config = json.loads(meta["config"])
        if not isinstance(config, dict):
            raise ValueError(f"config is a JSON {type(config).__name__}, not an object")
    except (ValueError, KeyError) as exc:
        raise ModelFileError(f"{path}: damaged model header ({exc}). Re-fit the model.") from exc
    if "sha256" in meta and content_sha256(meta["config"], arrays) != meta["sha256"]:
        raise ModelFileError(f"{path}: damaged model file (its content checksum does not match: the file was "
                             f"changed or corrupted after it was written). Re-fit the model or restore the file "
                             f"from a backup.")
    return config, arrays
