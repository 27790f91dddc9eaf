"""Where a published figure came from: the command, the commit, the versions and the CPU.

Every results file embeds this block, so a figure can be reproduced, and a
changed runtime (onnxruntime's 1.32 moved the int8 model's points) is visible.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("onnxruntime", "opencv-python-headless", "numpy", "torch", "pillow", "albumentations", "dlib-bin")


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# Instruction sets that decide onnxruntime's int8 kernels (docs/training.md, "Export"), so speed figures can be compared
INT8_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "amx_int8": "AMX-INT8"}


def _cpu() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), None)
    if model is None:
        return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), []))
    isa = ", ".join(name for flag, name in INT8_FLAGS.items() if flag in flags)
    return f"{model} ({os.cpu_count()} cores{'; ' + isa if isa else ''})"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def provenance(command: str | None = None) -> dict:
    """The block every results file records."""
    cmd = command or "python " + " ".join([Path(sys.argv[0]).as_posix().split(str(ROOT) + "/")[-1], *sys.argv[1:]])
    return {"command": cmd, "commit": _commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpu": _cpu(), "versions": versions()}


def markdown(p: dict) -> str:
    v = ", ".join(f"{k} {val}" for k, val in p["versions"].items())
    return (f"Command: `{p['command']}`  \nCommit: `{p['commit']}`, {p['date']}  \nCPU: {p['cpu']}  \n"
            f"Versions: {v}")


def save_results(out: Path, prov: dict, rows: list[dict], title: str, lines: list[str]) -> None:
    """``out``.json (provenance and rows) and ``out``.md (the title, the provenance block, then ``lines``)."""
    out.with_suffix(".json").write_text(json.dumps({"provenance": prov, "rows": rows}, indent=1) + "\n")
    text = "\n".join([f"# {title}", "", markdown(prov), "", *lines]) + "\n"
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
