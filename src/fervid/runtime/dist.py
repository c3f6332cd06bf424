"""torch.distributed helpers: rank, world size, collectives that are no-ops in one process."""

from __future__ import annotations

import atexit
import datetime
import importlib
import os
import sys


class _Lazy:
    """A module imported on first attribute access: the one-process answers below (rank 0 of
    1) need no torch, so ``fervid predict`` with an ONNX model never imports it."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)


torch = _Lazy("torch")
dist = _Lazy("torch.distributed")


def is_distributed() -> bool:
    if "torch" not in sys.modules:  # a process group needs torch: none was ever made
        return False
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_environment(timeout_s: float = 600) -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); gloo on CPU, nccl on
    CUDA. A collective that waits longer than ``timeout_s`` fails instead of hanging."""
    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return is_distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    atexit.register(leave_process_group)
    return True


def leave_process_group() -> None:
    """Destroy the process group before the interpreter exits: left to static destructors,
    gloo's threads can abort a finished process ("terminate called without an active
    exception"), and torchrun then reports a successful run as failed."""
    if is_distributed():
        dist.destroy_process_group()


def collective_device() -> torch.device:
    """Where tensors for a collective must live: the GPU under nccl, else the CPU."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_over_rows(rows: torch.Tensor) -> torch.Tensor:
    """Mean along dim 0 of every process's ``rows`` together, each row counting once (not a
    mean of per-process means: processes may hold different numbers of rows, e.g. when one has
    dropped a corrupt image), so any number of processes gives the one-process result."""
    if not is_distributed():
        return rows.mean(dim=0)
    rows = rows.detach()
    count = torch.tensor([len(rows)], dtype=rows.dtype, device=rows.device)
    total = torch.cat([rows.sum(dim=0).flatten(), count])
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return (total[:-1] / total[-1]).view(rows.shape[1:])


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenation along dim 0 of every process's ``tensor``, in rank order. The processes may
    hold different numbers of rows (the other dimensions must agree): the row counts are
    gathered first, every part is padded to the largest and trimmed back after the gather."""
    if not is_distributed():
        return tensor
    count = torch.tensor([len(tensor)], device=tensor.device)
    counts = [torch.empty_like(count) for _ in range(world_size())]
    dist.all_gather(counts, count)
    counts = [int(c) for c in counts]
    padded = tensor.new_zeros((max(counts), *tensor.shape[1:]))
    padded[: len(tensor)] = tensor
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, counts, strict=True)])


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum over processes (used to gather disjoint shares of a result); CPU tensors
    travel through the GPU when the backend is nccl."""
    if is_distributed():
        moved = tensor.to(collective_device())
        dist.all_reduce(moved, op=dist.ReduceOp.SUM)
        if moved is not tensor:
            tensor.copy_(moved)
    return tensor


def broadcast_from_main_(tensors) -> None:
    """Overwrite every process's ``tensors`` in place with process 0's (a no-op alone)."""
    if not is_distributed():
        return
    for tensor in tensors:
        moved = tensor.to(collective_device())
        dist.broadcast(moved, src=0)
        if moved is not tensor:
            tensor.copy_(moved)


def check_same_everywhere(text: str, what: str) -> None:
    """Fail on every process if ``text`` (e.g. a resolved config) differs between processes."""
    if not is_distributed():
        return
    import hashlib

    from fervid.errors import ConfigError

    digest = torch.tensor(list(hashlib.sha256(text.encode()).digest()[:8]), dtype=torch.int64)
    gathered = all_gather_cat(digest.view(1, -1).to(collective_device()))
    if not bool((gathered == gathered[0]).all()):
        raise ConfigError(f"the processes of this run were started with different {what}")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def main_first(work):
    """``work()`` on process 0 while the others wait; returns its result there (None elsewhere).
    If it raises on process 0, it raises there and every other process raises too, instead of
    waiting for a collective that never comes."""
    result, failure = None, None
    if is_main():
        try:
            result = work()
        except Exception as error:  # re-raised below, after the others are told
            failure = error
    if is_distributed():
        flag = torch.tensor([int(failure is not None)], device=collective_device())
        dist.broadcast(flag, src=0)
        if flag.item() and failure is None:
            raise RuntimeError("process 0 failed (its message is above); stopping this process")
    if failure is not None:
        raise failure
    return result


def sum_over_processes(value: int) -> int:
    """An integer summed over processes (counts of what each process saw)."""
    if not is_distributed():
        return value
    total = torch.tensor([value], dtype=torch.int64, device=collective_device())
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return int(total.item())


def gather_lists(items: list) -> list:
    """Every process's list (of picklable items), concatenated in rank order, on every process."""
    if not is_distributed():
        return items
    parts: list = [None] * world_size()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]
