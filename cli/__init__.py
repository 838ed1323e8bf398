"""Command-line commands of ``main.py``, one module per command.

Each module has ``add_parser(subparsers)`` (its options) and ``run(args) -> int`` (exit status).
The commands only parse, print and write files; the work is done by :mod:`engine`, a library.
"""

COMMANDS = ("fit", "predict", "evaluate", "demo", "backbones", "calibrate", "pretrain", "selftest")
"""Command names, in the order ``main.py -h`` lists them; each is the module ``cli.<name>``."""
