"""The durable record of every source file's progress (SQLite, standard library only)."""

from .states import TERMINAL, FileState, IllegalTransition
from .store import Journal, Row

__all__ = ["FileState", "IllegalTransition", "Journal", "Row", "TERMINAL"]
