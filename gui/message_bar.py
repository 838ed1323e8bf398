"""An inline message bar at the top of the window.

Errors (camera lost, unreadable model, failed fit...) are shown here once, in words, instead of in
modal dialogs: the station keeps running and the operator dismisses the message when read.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

_STYLES = {
    "info": ("#e8f0fe", "#174ea6"),
    "warning": ("#fef7e0", "#8d5b00"),
    "error": ("#fce8e6", "#a50e0e"),
}


class MessageBar(QWidget):
    """Shows the latest message with its level; hidden until the first one."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("MessageBar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button)
        self.level = ""
        self.hide()

    @property
    def text(self) -> str:
        return self.label.text()

    def show_message(self, level: str, text: str) -> None:
        """Show ``text``; ``level`` is ``"info"``, ``"warning"`` or ``"error"``."""
        bg, fg = _STYLES.get(level, _STYLES["info"])
        self.level = level
        self.setStyleSheet(f"#MessageBar {{ background: {bg}; border-bottom: 1px solid {fg}; }} "
                           f"QLabel {{ color: {fg}; }}")
        self.label.setText(text)
        self.show()
