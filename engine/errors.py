"""Specific exceptions of the engine.

Every message names the file (or setting) at fault and says how to fix it; the CLI and GUI show
the message once, at the edge, and never swallow it in the middle.
"""


class InspectError(Exception):
    """Base class of all engine errors."""


class ImageReadError(InspectError):
    """An image file cannot be decoded (corrupt, truncated, unsupported format, empty)."""


class DatasetError(InspectError):
    """A folder does not hold what is expected (no images, wrong layout, mask missing...)."""


class WeightsNotFoundError(InspectError):
    """Backbone weights cannot be found locally and cannot be downloaded."""


class CheckpointError(InspectError):
    """A backbone checkpoint does not match the architecture (missing/unexpected keys, shapes)."""


class ModelFileError(InspectError):
    """A fitted-model file is damaged, of a newer format, or not a DINOInspect model."""


class NotFittedError(InspectError):
    """A scorer or model is used before ``fit``."""


class Cancelled(InspectError):
    """Long work (fit, batch inspection) was cancelled by the user between steps."""
