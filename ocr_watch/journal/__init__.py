"""The durable record of every source file's progress (SQLite, standard library only)."""

from .integrity import JournalError
from .states import TERMINAL, FileState, IllegalTransition, Stage
from .store import Journal, Row, RowOptions, options_key

__all__ = ["TERMINAL", "FileState", "IllegalTransition", "Journal", "JournalError", "Row", "RowOptions", "Stage",
           "options_key"]
