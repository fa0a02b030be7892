"""What the suite's tests share: a small size, so every reference runs in well under a second."""

from __future__ import annotations

#: Corpus size of the tests, in tokens: a few chunks per task (budget-tight tasks raise it).
SIZE = 1 << 12
