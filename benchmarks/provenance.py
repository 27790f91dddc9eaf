"""Where a results file came from: command, git commit, library versions and CPU.

Every benchmark writes ``provenance(command)`` into its JSON and
``provenance_markdown(...)`` into its markdown, so a figure can be traced to the
code and machine that produced it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("onnxruntime", "opencv-python-headless", "numpy", "torch")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def provenance(command: str) -> dict[str, str]:
    """The command, commit (``+dirty`` when the tree has uncommitted changes), versions and CPU of this run."""
    commit = _git("rev-parse", "HEAD") or "unknown"
    if commit != "unknown" and _git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    info = {"command": command, "commit": commit, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "cpu": f"{_cpu()} ({os.cpu_count()} logical cores)"}
    info |= {name: _version(name) for name in PACKAGES}
    return info


def provenance_markdown(info: dict[str, str]) -> str:
    """A short markdown block for the head of a results file."""
    versions = ", ".join(f"{k} {info[k]}" for k in PACKAGES if k in info)
    return (f"Command: `{info['command']}`  \n"
            f"Commit: `{info['commit']}`, {info['date']}  \n"
            f"Versions: Python {info['python']}, {versions}  \n"
            f"CPU: {info['cpu']}")
