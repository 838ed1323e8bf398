"""Run by tests/test_crash_safety.py in a child process: the operator window (offscreen Qt) opens a
recipe and inspects a folder; after each defect-log row is committed it prints ``committed <id> <file>``
(flushed), so the test knows which rows the app had committed when it kills it with SIGKILL.

Usage: python tests/crash_app_driver.py MODEL FOLDER   (DINOINSPECT_DATA_DIR names the data folder)
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtWidgets import QApplication  # noqa: E402

app = QApplication([])
from gui.main_window import MainWindow  # noqa: E402


def wait(cond, timeout=300.0):
    t0 = time.monotonic()
    while not cond():
        app.processEvents()
        time.sleep(0.005)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError


model, folder = sys.argv[1], sys.argv[2]
w = MainWindow(device="cpu", restore_recipe=False)
w.show()
w.open_recipe(model)
wait(lambda: not w.busy)
assert w.info is not None, w.message_bar.text
add = w.log.add


def add_and_report(entry):
    row_id = add(entry)  # returns after the row's transaction is committed
    print(f"committed {row_id} {entry.file}", flush=True)
    return row_id


w.log.add = add_and_report
print(f"journal_mode {w.log.journal_mode}", flush=True)
w.run_folder(folder)
wait(lambda: not w.busy)
print("finished", flush=True)
w.close()
