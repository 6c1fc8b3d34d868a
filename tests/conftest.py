"""Shared fixtures: float64 random problems as the oracles expect them; the built book."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pcbp.experiments import random_problem


@pytest.fixture
def problem():
    """A 4-layer tanh network with a batch of 6: `(net, s_in, s_out)`."""
    return random_problem((3, 6, 5, 4, 7), "tanh", batch=6, seed=11)



@pytest.fixture(scope="session")
def html_dir() -> Path:
    """The built book: `$PCBP_BOOK_HTML` (the Makefile builds it first), else built here by `pcbp book --quick`."""
    root = Path(__file__).resolve().parent.parent
    given = os.environ.get("PCBP_BOOK_HTML")
    if not given:
        subprocess.run([sys.executable, "-m", "pcbp.cli", "book", "--quick", "--jobs", "2"], check=True, cwd=root,
                       capture_output=True)
        given = str(root / "_build" / "html")
    path = Path(given).resolve()
    assert (path / "index.html").is_file(), f"PCBP_BOOK_HTML={given} holds no built book"
    return path
