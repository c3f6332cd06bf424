"""Test helpers shared by several test files."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path


def kill_after_first_checkpoint(run: Path, cli_args: list[str], timeout: float = 180) -> None:
    """Start ``fervid <cli_args>`` and SIGKILL it as soon as its first checkpoint exists;
    assert it was killed before it finished (no final model yet)."""
    process = subprocess.Popen([sys.executable, "-m", "fervid", "-q", *cli_args])
    deadline = time.monotonic() + timeout
    while not (run / "checkpoints" / "last.pt").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "model.safetensors").exists(), "the run finished before it could be killed"


def torchrun(
    processes: int, *args: str, target: tuple[str, ...] = ("-m", "fervid", "-q")
) -> subprocess.CompletedProcess:
    """Run ``target *args`` under torchrun with ``processes`` CPU processes (gloo) on a free
    port; the caller checks the return code and reads stderr."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={processes}",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=127.0.0.1:0",
        *target,
        *args,
    ]
    return subprocess.run(command, timeout=300, capture_output=True, text=True)


def max_weight_difference(first: Path, second: Path) -> float:
    """The largest absolute difference between two model.safetensors files' tensors (0.0 when
    bit-identical); asserts they hold the same tensor names."""
    import torch

    from fervid.runtime.checkpoint import load_weights

    a, _ = load_weights(first)
    b, _ = load_weights(second)
    assert a.keys() == b.keys()
    worst = 0.0
    for key in a:
        if not torch.equal(a[key], b[key]):
            worst = max(worst, (a[key].double() - b[key].double()).abs().max().item(), 1e-300)
    return worst
