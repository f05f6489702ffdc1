"""What every benchmark records and writes: the machine it ran on, and its results.

Each benchmark prints its settings, then writes ``<out>.json`` (machine-readable)
and ``<out>.md`` (a table for the docs) through :func:`write_results`, with the
machine described by :func:`machine_info`, so that figures from different hosts
say which host made them.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradmatch import __version__
from gradmatch.atomic import write_text_atomic
from gradmatch.memory import freed_memory_is_kept
from gradmatch.runtime import cpu_description, cpu_has_bf16


def machine_info(device: str = "cpu") -> dict:
    """The host, the libraries and the settings that change a benchmark's seconds.

    ``device`` is the torch device the benchmark runs on; for CUDA the GPU's
    name is recorded. ``malloc`` says whether the caller is inside
    :func:`gradmatch.keep_freed_memory` at the time of the call.
    """
    import torch

    gpu = device != "cpu" and torch.cuda.is_available()
    return {"platform": platform.platform(), "cpu": cpu_description(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "gradmatch": __version__,
            "glibc": platform.libc_ver()[1] or None,
            "malloc": "keep-freed" if freed_memory_is_kept() else "default",
            "bf16_hardware": cpu_has_bf16(),
            "device": torch.cuda.get_device_name(torch.device(device)) if gpu else "cpu"}


def describe(machine: dict) -> str:
    """One line for a results table: the CPU and its vector extensions, its cores, torch
    threads, torch, the allocator's setting (``malloc``) and the device."""
    return (f"{machine['cpu']}, {machine['cpu_count']} cores, {machine['torch_threads']} torch threads, "
            f"torch {machine['torch']}" + (f", malloc {machine['malloc']}" if machine.get("malloc") else "")
            + (f", device {machine['device']}" if machine["device"] != "cpu" else ""))


def write_results(out: str | Path, record: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``record`` to ``<out>.json`` and ``markdown`` to ``<out>.md``; say where.

    ``out`` is a path without extension; its folder is created. Returns the
    two paths.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out.with_suffix(".json"), out.with_suffix(".md")
    write_text_atomic(json_path, json.dumps(record, indent=2) + "\n")
    write_text_atomic(md_path, markdown if markdown.endswith("\n") else markdown + "\n")
    print(f"wrote {json_path} and {md_path}", flush=True)
    return json_path, md_path
