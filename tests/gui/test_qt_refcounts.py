"""The installed Qt binding keeps Python's reference counts: PySide6 6.12.0 lost one reference to
``True`` on each Python-side signal emit and one to ``None`` on each Qt call returning nothing, so the
app aborted (``Fatal Python error: bool_dealloc`` / ``none_dealloc``) after minutes of live inspection
(pyproject.toml excludes that version). Run in a child process: the failure is an abort, not an
exception."""

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import os, sys
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QApplication, QLabel
    app = QApplication([])
    class Source(QObject):
        number = Signal(int)
        text = Signal(str)
    src, got = Source(), []
    src.number.connect(got.append)
    src.text.connect(got.append)
    label = QLabel()
    t0, n0 = sys.getrefcount(True), sys.getrefcount(None)
    for i in range(20000):
        src.number.emit(i)
        src.text.emit("x")
        label.setText(str(i % 7))
        app.processEvents()
    print(len(got), sys.getrefcount(True) - t0, sys.getrefcount(None) - n0)
""")


def test_signal_emits_and_qt_calls_keep_true_and_none_alive():
    import PySide6

    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"PySide6 {PySide6.__version__} aborted: {r.stderr.strip()[-400:]}"
    delivered, d_true, d_none = map(int, r.stdout.split())
    assert delivered == 40000
    # 20,000 rounds: a leak of one reference per call would show as tens of thousands
    assert abs(d_true) < 1000 and abs(d_none) < 1000, (PySide6.__version__, d_true, d_none)
