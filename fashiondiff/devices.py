"""Where a computation runs: the device, and the processes of a distributed run.

``pick_device`` chooses cuda, mps or cpu; under torchrun ``init_distributed`` also joins the process group
(gloo on CPU, nccl on CUDA) and ``rank_and_world`` says which process this is. Inference needs only
``pick_device``; a training command (``fashiondiff.runs``) needs all three, and asks ``keep_freed_memory`` to tune
the process's memory allocator for training on a CPU (the training loop itself leaves the process as it is).
"""

from __future__ import annotations

import ctypes
import os
import platform

import torch
import torch.distributed as dist


def pick_device(device: str | None = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def init_distributed(device: str | None = "auto") -> torch.device:
    """The device to train on. Under torchrun (``WORLD_SIZE`` > 1) also join the process group: nccl with one
    GPU per process (``LOCAL_RANK``), gloo on CPU."""
    dev = pick_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    elif dist.is_initialized() and dev.type == "cuda":
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of processes): (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing large blocks back to the system.

    A training step allocates and frees the same large activations at every step. By default glibc serves large
    blocks with mmap and unmaps them on free, so every step pays page faults while the kernel zeroes fresh pages.
    Setting the mmap threshold to 32 MB and the trim threshold to 1 GB (``mallopt``) makes freed blocks reusable
    (the README's benchmarks give the gain). It changes the whole process, so a command calls it, not the training
    loop; the cost is that the process keeps its peak memory until it exits. Linux with glibc only (returns False
    elsewhere, changing nothing); True when both settings were taken."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3                 # from <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))
