"""The code style the guide asks for, checked rather than hoped for: lint clean, short modules and functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def _sources() -> list[Path]:
    return sorted(p for d in ("facepoints", "benchmarks", "tests", "docs") for p in (ROOT / d).rglob("*.py"))


def test_ruff_finds_nothing() -> None:
    """pyproject.toml's [tool.ruff.lint] rules (pycodestyle, pyflakes, import order) over the whole checkout."""
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_package_modules_and_functions_stay_short() -> None:
    """A newcomer reads one module in a sitting: package modules under ~450 lines, functions under ~60."""
    long_modules, long_functions = [], []
    for path in (p for p in _sources() if p.is_relative_to(ROOT / "facepoints")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not long_modules, long_modules
    assert not long_functions, long_functions
