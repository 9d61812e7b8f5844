"""pf-bench: model-only, whole-pipeline and RTSP-latency speed measurements."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine_description() -> str:
    """CPU model and core count, for naming the machine beside every figure."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def write_json_result(path: str, text: str) -> None:
    """Write the result; a failure (disk full) is one line, and the result is on stdout anyway."""
    from pf_stream.errors import UserError

    try:
        Path(path).write_text(text + "\n")
    except OSError as exc:
        raise UserError(f"cannot write --json {path}: {exc.strerror or exc} (the result is printed above)") from None
