"""DINOInspect engine: Qt-free inspection core.

Reads images, turns them into patch features with a pretrained backbone, fits a scorer on the
patch features of good parts only, and scores new parts into an anomaly map and an image score.

See also: ``engine.model.InspectionModel`` (the object the CLI and GUI drive),
``engine.backbones`` (registry of named backbones), ``engine.scorers`` (memory bank, ...).
"""

__version__ = "0.1.0"
