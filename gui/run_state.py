"""A small file that says a run is under way, so a run cut short by a crash or a kill is noticed.

The window writes ``run_state.json`` in the data folder (:func:`gui.locations.data_dir`) when a
folder, image, camera or video run starts, and deletes it when the run ends in any normal way
(finished, cancelled, failed with a message, stopped, or the window closed). A file still there at
the next start therefore means the program was killed or crashed mid-run: the window says so, with
what was running and how many of its inspections reached the defect log, then deletes it.

The file is JSON (never executed), written atomically (temporary file + rename). Plain Python.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

RUN_STATE_FILE = "run_state.json"


class RunState:
    """The run-state file at ``path`` (module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def start(self, kind: str, what: str, recipe: str, last_log_id: int, total: int | None = None) -> str | None:
        """A run starts: ``kind`` ("folder", "image", "camera", "video"), ``what`` (folder, file
        count or source, in words), the active recipe, the defect log's newest row id before the
        run, and the number of images when known.

        Returns:
            None, or a warning naming the file and the fix when it cannot be written.
        """
        state = {"kind": kind, "what": what, "recipe": recipe, "last_log_id": int(last_log_id), "total": total,
                 "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "pid": os.getpid()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(state), encoding="utf-8")
            tmp.replace(self.path)
        except OSError as exc:
            return (f"{self.path}: cannot write the run-state file ({exc}); a run cut short will not be noticed "
                    f"at the next start. Make the data folder writable.")
        return None

    def finish(self) -> str | None:
        """The run ended normally: forget it. Returns None, or a warning when the file stays."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            return (f"{self.path}: cannot remove the run-state file ({exc}); delete it by hand, or the next start "
                    f"reports this run as interrupted.")
        return None

    def interrupted_note(self, count_logged_after) -> str | None:
        """The operator's note about a run that never finished (then forgotten), or None.

        ``count_logged_after(last_log_id)``: inspections in the defect log after that row id.
        """
        state = self.leftover()
        if state is None:
            return None
        last = state.get("last_log_id")
        note = interrupted_note(state, count_logged_after(last) if isinstance(last, int) else None)
        warning = self.finish()
        return note if warning is None else f"{note} {warning}"

    def leftover(self) -> dict | None:
        """The state of a run that never finished (the dict :meth:`start` wrote), or None.

        A damaged file gives ``{"kind": "unknown", "what": "(damaged run-state file <path>)"}``.
        """
        if not self.path.is_file():
            return None
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(state, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            return {"kind": "unknown", "what": f"(damaged run-state file {self.path}: {exc})", "recipe": "",
                    "last_log_id": None, "total": None, "started_at": "?"}
        return state


def interrupted_note(state: dict, logged: int | None) -> str:
    """The operator's message about an interrupted run (``logged``: its inspections in the log)."""
    total = state.get("total")
    of = f" of {total}" if total else ""
    recipe = f" with recipe {state['recipe']}" if state.get("recipe") else ""
    done = "" if logged is None else f" {logged}{of} inspection(s) of it reached the defect log;"
    return (f"The last run did not end normally (the program was killed or crashed): {state.get('kind')} run of "
            f"{state.get('what')}{recipe}, started {state.get('started_at')}.{done} the rest was not inspected — "
            f"run it again if needed.")
