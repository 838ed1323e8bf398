#!/usr/bin/env bash
# Build the packaged program (PyInstaller) in a clean venv, then smoke-test it as a station would.
#
#   scripts/build_bundle.sh [--flavour gpu|cpu] [--venv DIR] [--no-smoke] [--smoke-args "..."]
#
#   gpu (default)  torch / torchvision as pyproject.toml pins them (CUDA build; runs on CPU too)
#                  -> dist/DINOInspect/
#   cpu            the CPU-only torch wheel (no CUDA libraries) -> dist/DINOInspect-cpu/
#
# Steps: a new venv (default build/venv-<flavour>; an existing one is deleted first), the project
# and PyInstaller installed into it, `pyinstaller build.spec`, then scripts/bundle_smoke.py with the
# system python3 (it renames the venv away while it runs the bundle under `env -i`).
# The build host needs Qt's xcb libraries (the bundle carries them): scripts/install_qt_deps.sh --desktop.
# Xvfb and ImageMagick's `import` are needed for the smoke test's GUI check (apt-get install xvfb imagemagick).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FLAVOUR=gpu
VENV=""
SMOKE=1
SMOKE_ARGS=""
PYTHON="${PYTHON:-python3}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --flavour) FLAVOUR="$2"; shift 2 ;;
        --venv) VENV="$2"; shift 2 ;;
        --no-smoke) SMOKE=0; shift ;;
        --smoke-args) SMOKE_ARGS="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "build_bundle: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$FLAVOUR" in
    gpu) NAME=DINOInspect ;;
    cpu) NAME=DINOInspect-cpu ;;
    *) echo "build_bundle: --flavour must be gpu or cpu, not '$FLAVOUR'" >&2; exit 2 ;;
esac
VENV="${VENV:-build/venv-$FLAVOUR}"
VENV="$(mkdir -p "$(dirname "$VENV")" && cd "$(dirname "$VENV")" && pwd)/$(basename "$VENV")"

echo "== build_bundle: flavour $FLAVOUR, venv $VENV, output dist/$NAME ($(date -u +%FT%TZ); $(uptime))"
T0=$(date +%s)
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
if [[ "$FLAVOUR" == cpu ]]; then
    # PyTorch's CPU-only wheels of the pinned versions (no CUDA libraries), from PyTorch's CPU index;
    # the project's pins (torch==2.14.1) accept 2.14.1+cpu, so the second pip keeps them.
    # PyPI's torchvision is a CUDA build that cannot load with a +cpu torch (README, "Packaged program").
    CPU_INDEX="${CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
    # The "+cpu" pins (packaging/cpu-constraints.txt) keep pip from taking the CUDA build of the same
    # release from any other index or wheel folder it is configured with.
    CPU_PINS=$(sed -e 's/#.*//' packaging/cpu-constraints.txt | xargs)
    "${PIP[@]}" --retries 1 --timeout 30 $CPU_PINS --index-url "$CPU_INDEX" || {
        echo "build_bundle: could not install $CPU_PINS from $CPU_INDEX; the CPU flavour needs PyTorch's CPU wheels: set CPU_INDEX to a reachable mirror of https://download.pytorch.org/whl/cpu" >&2
        exit 1; }
    "${PIP[@]}" -c packaging/cpu-constraints.txt -e . pyinstaller
    if [[ "$("$VENV/bin/python" -c 'import torch; print(torch.version.cuda)')" != None ]]; then
        echo "build_bundle: the CPU venv holds a CUDA torch build; check CPU_INDEX ($CPU_INDEX)" >&2; exit 1
    fi
else
    "${PIP[@]}" -e . pyinstaller
fi
T1=$(date +%s)
VERSIONS=$("$VENV/bin/python" -c 'import torch, torchvision; torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5); print("torch", torch.__version__, "torchvision", torchvision.__version__)') || {
    echo "build_bundle: torch and torchvision in $VENV do not work together (above); a torchvision built for another torch (e.g. PyPI's CUDA torchvision beside a +cpu torch): install both from the same index" >&2
    exit 1; }
echo "== installed in $((T1 - T0)) s: $VERSIONS"
"$VENV/bin/python" scripts/bundle_manifest.py > "build/manifest-$FLAVOUR.txt"  # fails early, naming what is missing
DINOINSPECT_FLAVOUR="$FLAVOUR" "$VENV/bin/pyinstaller" --noconfirm --log-level WARN \
    --distpath dist --workpath "build/pyinstaller-$FLAVOUR" build.spec
T2=$(date +%s)
echo "== built dist/$NAME in $((T2 - T1)) s (install + build $((T2 - T0)) s); size $(du -sh "dist/$NAME" | cut -f1)"
if [[ "$SMOKE" == 1 ]]; then
    # shellcheck disable=SC2086
    python3 scripts/bundle_smoke.py "dist/$NAME" --venv "$VENV" $SMOKE_ARGS
fi
