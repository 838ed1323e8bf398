"""engine.app_info: source vs packaged program, the folders it names, and the hints that use it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from engine import app_info
from tests.conftest import REPO


@pytest.fixture
def frozen(tmp_path, monkeypatch):
    """This process made to look like a PyInstaller onedir program in ``tmp/dist/DINOInspect``."""
    prog = tmp_path / "dist" / "DINOInspect"
    internal = prog / "_internal"
    internal.mkdir(parents=True)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(internal), raising=False)
    monkeypatch.setattr(sys, "executable", str(prog / "dinoinspect-cli"))
    return prog


def test_source_checkout_identity():
    assert not app_info.is_frozen()
    assert app_info.program_dir() == REPO and (REPO / "main.py").is_file()
    assert app_info.cli_command() == "python main.py"
    assert app_info.self_command() == [sys.executable, str(REPO / "main.py")]
    assert app_info.resource_path("resources", "dinoinspect.png").is_file()


def test_packaged_program_identity(frozen):
    assert app_info.is_frozen()
    assert app_info.program_dir() == frozen
    assert app_info.resource_dir() == frozen / "_internal"
    assert app_info.cli_command() == "dinoinspect-cli" and app_info.prog_name() == "dinoinspect-cli"
    assert app_info.gui_command() == "DINOInspect"
    assert app_info.self_command() == [str(frozen / "dinoinspect-cli")]


def test_usage_and_hints_name_the_packaged_program(frozen):
    import main
    from engine.errors import ModelFileError
    from engine.modelfile import load_model_file

    text = main.build_parser().format_help()
    assert text.startswith("usage: dinoinspect-cli ")
    assert "dinoinspect-cli fit ..." in text and "DINOInspect " in text
    assert "python main.py" not in text and "main.py" not in text
    with pytest.raises(ModelFileError, match="Fit one with `dinoinspect-cli fit`"):
        load_model_file(frozen / "missing.dimodel")


def _user_facing_main_py(path: Path) -> list[str]:
    """String constants (f-string parts included) mentioning main.py, other than docstrings (bare string
    statements)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(n.value) for n in ast.walk(tree)  # module / function / attribute docstrings: bare strings
                  if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if "main.py" in node.value:
                hits.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value[:80]!r}")
    return hits


def test_no_hard_coded_main_py_hint_is_left():
    """Every user-facing 'python main.py ...' goes through app_info.cli_command(); allowed: app_info's
    own constant and calibrate's usage text, which is rewritten with cli_command() when shown."""
    allowed = {"engine/app_info.py", "cli/calibrate.py"}
    hits = [h for d in ("engine", "cli", "gui") for p in sorted((REPO / d).rglob("*.py"))
            if str(p.relative_to(REPO)) not in allowed for h in _user_facing_main_py(p)]
    assert not hits, "\n".join(hits)
    calibrate = _user_facing_main_py(REPO / "cli" / "calibrate.py")
    assert all("USAGE" in (REPO / "cli" / "calibrate.py").read_text().splitlines()[int(h.split(":")[1]) - 1]
               for h in calibrate)


def test_data_folder_is_the_one_qt_gives_the_gui(tmp_path, monkeypatch):
    from PySide6.QtCore import QCoreApplication, QStandardPaths

    QCoreApplication.setOrganizationName(app_info.ORGANIZATION)
    QCoreApplication.setApplicationName(app_info.APPLICATION)
    monkeypatch.delenv(app_info.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for xdg in (str(tmp_path / "xdg"), "relative/xdg", None):
        if xdg is None:
            monkeypatch.delenv("XDG_DATA_HOME", raising=False)
        else:
            monkeypatch.setenv("XDG_DATA_HOME", xdg)
        qt = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
        assert app_info.platform_data_dir() == Path(qt), xdg
        assert app_info.user_data_dir(create=False) == Path(qt)


def test_data_folder_variable_wins_and_is_created(tmp_path, monkeypatch):
    d = tmp_path / "a" / "b"
    monkeypatch.setenv(app_info.ENV_DATA_DIR, str(d))
    assert app_info.user_data_dir() == d and d.is_dir()


def test_platform_data_dir_on_windows_and_macos():
    home = Path("/h")
    assert app_info.platform_data_dir("win32", {"APPDATA": "C:/Users/u/AppData/Roaming"}, home) == \
        Path("C:/Users/u/AppData/Roaming/DINOInspect/DINOInspect")
    assert app_info.platform_data_dir("darwin", {}, home) == \
        Path("/h/Library/Application Support/DINOInspect/DINOInspect")


def test_weights_beside_the_packaged_program_are_found(frozen, tmp_path, monkeypatch):
    from engine.backbones import BACKBONES, find_local_weights
    from engine.backbones.registry import weight_dirs

    monkeypatch.delenv("DINOINSPECT_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # not the program's folder
    spec = BACKBONES["dinov2_vitb14"]
    assert find_local_weights(spec) is None
    (frozen / "weights").mkdir()
    beside = frozen / "weights" / "dinov2_vitb14_pretrain.pth"
    beside.write_bytes(b"x")
    assert find_local_weights(spec) == beside
    assert weight_dirs()[0] == frozen / "weights"
    # shipped inside the bundle (_internal/weights): found too, after the folder beside the program
    beside.unlink()
    (frozen / "_internal" / "weights").mkdir()
    shipped = frozen / "_internal" / "weights" / "dinov2_vitb14_pretrain.pth"
    shipped.write_bytes(b"x")
    assert find_local_weights(spec) == shipped
    # $DINOINSPECT_WEIGHTS still comes first
    env_dir = tmp_path / "env_weights"
    env_dir.mkdir()
    (env_dir / "dinov2_vitb14_pretrain.pth").write_bytes(b"x")
    monkeypatch.setenv("DINOINSPECT_WEIGHTS", str(env_dir))
    assert find_local_weights(spec) == env_dir / "dinov2_vitb14_pretrain.pth"


def test_demo_report_goes_to_the_user_data_folder_not_the_program_or_current_folder(frozen, tmp_path, monkeypatch):
    from cli.demo import default_report_dir

    monkeypatch.delenv(app_info.ENV_DATA_DIR, raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(frozen)  # an operator starting the program from its own folder
    report = default_report_dir()
    assert report == tmp_path / "home" / ".local" / "share" / "DINOInspect" / "DINOInspect" / "demo_report"
    assert frozen not in report.parents and Path.cwd() not in report.parents
