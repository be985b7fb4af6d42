# In-memory board for CPython unit tests (docs/hal.md).
from hal.mock.board import Board  # noqa: F401
