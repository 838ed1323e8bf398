"""argparse value types shared by the commands (``cli/*``)."""

from __future__ import annotations

import argparse
import math


def in_range(lo: float, hi: float, kind=float, lo_open: bool = False):
    """argparse type: a finite number in ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``), with a clear message.

    Raises (at parse time) ``argparse.ArgumentTypeError`` naming the value and the range; NaN and
    infinities are refused like any value out of range.
    """
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
            raise argparse.ArgumentTypeError(f"{v} is out of range {'(' if lo_open else '['}{lo}, {hi}]")
        return v
    return parse
