"""Which tensors of a weights file go into which parameters of a backbone.

By name first (the keys of the file are the backbone's); a file that names its tensors another
library's way (torchvision, EfficientNet-PyTorch) is matched by position instead, when every
tensor of the backbone has its counterpart, in order and shape, before the file's classifier.
This module imports nothing, so that a benchmark running another toolkit's environment (USB in
``benchmarks/usb_compare.py``) loads the same matching from this file.
"""

from __future__ import annotations

from typing import Any


def match_tensors(own: dict[str, Any], state: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(the tensors of ``state`` to load, keyed by the names in ``own``; "by name" or "by
    position"). ``own`` is the backbone's state dict; a tensor matches when its shape does."""
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(usable) < len(own) and len(state) >= len(own):
        pairs = zip(own.items(), state.values(), strict=False)
        by_position = {k: v for (k, mine), v in pairs if mine.shape == v.shape}
        if len(by_position) == len(own):
            return by_position, "by position"
    return usable, "by name"
