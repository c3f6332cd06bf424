"""The threads of predict's pipeline, and what live input adds to them.

``in_background`` runs a generator in a thread and hands its items over a bounded queue, so
decoding, detection and encoding overlap on the cores (PyAV, onnxruntime, PIL and torch release
the GIL). For live input (``PredictOptions.live``) the decoding queue never blocks the stream:
a frame that arrives while the queue is full is dropped and counted (``Drops``), and each
frame's arrival time is kept (``stamped``) so that a row's latency, frame in -> row out, can
be reported.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Iterable, Iterator


class Drops:
    """How many items a dropping queue let go."""

    def __init__(self):
        self.count = 0


def in_background(
    iterator: Iterable,
    depth: int = 32,
    drops: Drops | None = None,
    stop: threading.Event | None = None,
) -> Iterator:
    """Run a generator in a thread, yielding its items here; an exception in the thread is
    raised here. With ``drops``, an item that finds the queue full is dropped and counted
    instead of waiting (the producer, a live stream, keeps its pace). With ``stop``, the
    iteration ends soon after it is set, even while no item comes."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    def put(item) -> bool:
        """Queue ``item``, waiting for room unless stopped; False when stopped."""
        while True:
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                if stopped():
                    return False

    def produce() -> None:
        try:
            for item in iterator:
                if stopped():
                    break
                if drops is None:
                    if not put(item):
                        break
                else:
                    try:
                        items.put_nowait(item)
                    except queue.Full:
                        drops.count += 1
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            put(error)
        put(done)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = items.get(timeout=0.1)
            except queue.Empty:
                if stopped():
                    return
                continue
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
        thread.join()
    finally:
        if stopped():
            # the producer stops at its next item: wait for it (a thread still inside native
            # code at interpreter exit aborts the process), unless a stream blocks it
            thread.join(timeout=5)


@contextlib.contextmanager
def stop_on_ctrl_c() -> Iterator[threading.Event]:
    """An event that Ctrl-C (SIGINT) sets instead of raising KeyboardInterrupt somewhere in the
    middle of a frame, so the pipeline can stop between frames with everything consistent.
    Only in the main thread (elsewhere signals cannot be caught: the event is never set)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def stamped(frames: Iterable, arrivals: dict[int, float]) -> Iterator:
    """``frames`` as they come, each frame's arrival (``time.monotonic``) kept by its index."""
    for frame in frames:
        arrivals[frame.index] = time.monotonic()
        yield frame
