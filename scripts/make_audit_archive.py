"""Make an archive of N images for audit tests and benchmarks: copies of the shared data's images in a
line / day / lot folder tree, each copy with its own bytes.

    python scripts/make_audit_archive.py DEST --n 10000 [--source ../shared/data/mvtec_ad/bottle] [--per-lot 50]

Layout: ``DEST/line{1..3}/2026-11-{01..07}/lot{NNN}/img_{k:05d}{.png|.jpg}``; image ``k`` is source
``k % len(sources)`` (the source's images in sorted path order, masks excluded: engine.audit.scan's
walk), lot ``k // per_lot``, line ``lot % 3 + 1``, day ``(lot // 3) % 7 + 1``. Deterministic: the same
arguments give the same files, byte for byte.

Each copy is the source file's bytes followed by a 32-byte trailer naming the copy (``\\0audit-copy
<k>``, after PNG's IEND / JPEG's EOI chunk, where decoders stop reading): the pixels are the
source's, but every file has its own content, size-and-tail hash and mtime, as real archive files
do (a hard link or a plain copy would give 10,000 files with only a few hundred distinct contents).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "mvtec_ad" / "bottle"


def trailer(k: int) -> bytes:
    """The 32 bytes appended to copy ``k``."""
    return f"\0audit-copy {k:010d}".encode().ljust(32, b"\0")


def make_archive(dest: Path, n: int, sources: list[Path], per_lot: int = 50, progress: bool = True) -> list[Path]:
    """Write ``n`` copies (module docstring) under ``dest``; returns their paths in ``k`` order.

    Raises:
        SystemExit: no source image.
    """
    from tqdm import tqdm

    if not sources:
        raise SystemExit("no source images: give --source folders that hold images")
    cache: dict[Path, bytes] = {}
    out = []
    for k in tqdm(range(n), desc="archive", unit="img", disable=not progress, file=sys.stderr):
        src = sources[k % len(sources)]
        lot = k // per_lot
        folder = dest / f"line{lot % 3 + 1}" / f"2026-11-{(lot // 3) % 7 + 1:02d}" / f"lot{lot:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        p = folder / f"img_{k:05d}{src.suffix.lower()}"
        if src not in cache and len(cache) < 4096:
            cache[src] = src.read_bytes()
        data = cache.get(src) or src.read_bytes()
        p.write_bytes(data + trailer(k))
        out.append(p)
    return out


def main(argv: list[str] | None = None) -> int:
    from engine.audit.scan import ArchiveScan

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest", type=Path, help="folder to write (created; existing files of the same names replaced)")
    ap.add_argument("--n", type=int, default=10000, help="images to write (default %(default)s)")
    ap.add_argument("--source", type=Path, nargs="+", default=[DEFAULT_SOURCE],
                    help="folders whose images are copied, searched recursively (default: %(default)s)")
    ap.add_argument("--per-lot", type=int, default=50, help="images per lot folder (default %(default)s)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    sources = [Path(f.path) for f in ArchiveScan(args.source)]
    paths = make_archive(args.dest, args.n, sources, args.per_lot, not args.quiet)
    size = sum(os.path.getsize(p) for p in paths)
    print(f"{len(paths)} images ({size / 2**20:.0f} MiB) from {len(sources)} sources in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
