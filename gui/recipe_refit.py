"""Fit a recipe again with what its model file records (to change its region of interest).

A region of interest cannot be changed on a fitted recipe: the memory bank (or the prototypes, or
PaDiM's Gaussians) was learned from the patches of the old region and the threshold calibrated on
it. "Edit region of interest…" therefore re-fits: :func:`refit_spec` reads the fit settings from the
model file's header (backbone, scorer and its parameters, input size, target false-reject rate, the
good folder and how many of its images, the region), the New-recipe dialog opens filled with them
(:meth:`gui.recipe_dialog.NewRecipeDialog.prefill`) and the region editor on top; "Re-fit" writes
the same model file (after asking).

A recipe fitted without calibration (hold-out fraction 0) is re-fitted without; one calibrated on a
hold-out (``fit --folds 1`` on the command line) is named in the notes, since the app cross-fits.
The re-fit replaces the applied threshold by the new calibration: the window logs
that as an event row ("re-fitted with a new region, threshold X -> Y", :func:`refit_event_message`).

Settings the New-recipe dialog does not offer are those of the app's fits: the resize mode,
image-score rule and map smoothing (:func:`refit_spec` names each that the model file has otherwise,
a recipe fitted with other options on the command line, so the operator can re-fit with the CLI
instead: ``python main.py fit --roi``), and the backbone's default layers and precision (not
compared).
"""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path

from engine.app_info import cli_command
from engine.errors import InspectError, ModelFileError
from engine.listing import list_images
from engine.model import InspectionModel
from engine.modelfile import load_model_file
from engine.scorers import SCORERS

from .recipes import RecipeSpec

APP_DEFAULTS = {name: p.default for name, p in inspect.signature(InspectionModel.__init__).parameters.items()
                if name in ("resize_mode", "score_mode", "top_fraction", "sigma")}
"""Model settings of every fit made in the app (their defaults in :class:`InspectionModel`)."""


def scorer_kwargs(name: str, stored: dict) -> dict:
    """The stored parameters of scorer ``name`` that its constructor takes and that differ from
    its defaults (fitted sizes and other state left out)."""
    params = inspect.signature(SCORERS[name].__init__).parameters
    return {k: v for k, v in stored.items()
            if k in params and k != "self" and (params[k].default is inspect.Parameter.empty or params[k].default != v)}


def refit_spec(model_path: str | Path) -> tuple[RecipeSpec, list[str]]:
    """How to fit the recipe in ``model_path`` again, from its header.

    Returns:
        ``(spec, notes)``: the spec writes ``model_path`` again; ``notes`` name each setting of the
        file that the app's fit does not reproduce (empty when it reproduces them all).
    Raises:
        ModelFileError: the file cannot be read, or it does not record its good images (written
            by an old version) or they came from several folders; the message says what to do.
    """
    path = Path(model_path)
    config, _ = load_model_file(path)
    prov = config.get("provenance") or {}
    images = [Path(p) for p in (prov.get("images") or []) + (prov.get("holdout_images") or [])]
    if not images:
        raise ModelFileError(f"{path}: the recipe does not record its good images (fitted by an older version). "
                             f"Create it again with New recipe.")
    folders = Counter(p.parent for p in images)
    if len(folders) > 1:
        raise ModelFileError(f"{path}: the recipe was learned from {len(folders)} folders; the app re-fits from one. "
                             f"Re-fit it with `{cli_command()} fit --roi REGION.roi.json`.")
    folder = next(iter(folders))
    scorer = config["scorer"]["name"]
    if scorer not in SCORERS:
        raise ModelFileError(f"{path}: scorer {scorer!r} unknown to this version; update DINOInspect.")
    calib = config.get("calibration") or {}
    try:
        in_folder = len(list_images(folder, allow_empty=True))
    except InspectError:
        in_folder = None  # gone or unreadable: the dialog says what is wrong with the folder
    # the fit took the first N images of the folder (unreadable ones skipped among them)
    n = int(prov.get("n_images") or 0) + len(prov.get("skipped") or [])
    spec = RecipeSpec(good_folder=str(folder), model_path=str(path), backbone=config["backbone"]["name"],
                      scorer=scorer, size=config["preprocess"]["size"],
                      scorer_params=scorer_kwargs(scorer, config["scorer"].get("params") or {}),
                      target_frr=float(calib.get("target_frr") or RecipeSpec.target_frr),
                      max_images=n if n and in_folder is not None and n < in_folder else None,
                      roi=config.get("roi"),
                      holdout_fraction=RecipeSpec.holdout_fraction if calib else 0.0)  # 0: fitted uncalibrated
    stored = {"resize_mode": config["preprocess"].get("mode"), **{k: config["anomaly_map"].get(k) for k in
                                                                    ("score_mode", "top_fraction", "sigma")}}
    notes = [f"{k} is {stored[k]!r} in the file, {v!r} in the app's fit" for k, v in APP_DEFAULTS.items()
             if stored[k] is not None and stored[k] != v]
    n_hold, n_all = int(prov.get("n_holdout") or 0), int(prov.get("n_images") or 0)
    if calib and n_hold:  # fitted with folds < 2 on the command line
        notes.append(f"the threshold was calibrated on a hold-out of {n_hold} of {n_all} images in the file; "
                     f"the app's fit cross-fits all of them (5 folds)")
    return spec, notes


def refit_event_message(before: dict, after: dict) -> str:
    """The log line of a re-fit with a new region: ``before`` and ``after`` are the window's
    recipe info (:func:`gui.worker.model_info`) of the old and the new fit."""
    def t(info: dict) -> str:
        return "none" if info.get("threshold") is None else f"{info['threshold']:.6g}"
    def region(info: dict) -> str:
        roi = info.get("roi")
        return "whole image" if not roi else f"{len(roi.get('include') or [])} include, " \
                                             f"{len(roi.get('exclude') or [])} exclude polygon(s)"
    return (f"recipe re-fitted with a new region ({region(before)} -> {region(after)}), threshold {t(before)} -> "
            f"{t(after)} (newly calibrated on the new region)")
