import json

import numpy as np
import pytest
import torch

from fervid.data.transforms import weak_augment
from fervid.errors import DataError
from fervid.runtime.checkpoint import load_state, load_weights, save_state, save_weights


def test_weak_augment_flips_some_images_and_keeps_shape_dtype_and_content():
    images = torch.zeros(64, 3, 32, 32, dtype=torch.uint8)
    images[:, :, 8:12, 4:8] = 255  # a bright square left of centre
    out = weak_augment(images, torch.Generator().manual_seed(0), max_shift=0.125)
    assert out.shape == images.shape and out.dtype == torch.uint8
    centre_x = (out[:, 0].float().sum(1) * torch.arange(32)).sum(1) / out[:, 0].float().sum((1, 2))
    assert (centre_x > 16).any() and (centre_x < 16).any()  # some flipped, some not
    assert not torch.equal(out, images)
    assert out.float().sum((1, 2, 3)).min() > 0  # reflect padding keeps content


def reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Reflect-padding's source index (the edge not repeated): -1 -> 1, size -> size - 2."""
    index = np.abs(index)
    return np.where(index > size - 1, 2 * (size - 1) - index, index)


@pytest.mark.parametrize(("side", "max_shift"), [(32, 0.125), (16, 0.25)])
def test_weak_augment_moves_each_image_by_its_drawn_shift(side, max_shift):
    """Rebuilt by hand from the generator's draws, in weak_augment's order (per image: flip
    if u < 0.5, then dy and dx uniform in 0..2*pad): output pixel (y, x) is input pixel
    (y + dy - pad, x + dx - pad) of the (flipped) image, reflected at the borders; the
    content moves by (pad - dy, pad - dx)."""
    batch, pad = 48, round(max_shift * side)
    pixels = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, generator=pixels)
    out = weak_augment(images, torch.Generator().manual_seed(7), max_shift=max_shift)

    draws = torch.Generator().manual_seed(7)
    flip = (torch.rand(batch, generator=draws) < 0.5).numpy()
    dy = torch.randint(0, 2 * pad + 1, (batch,), generator=draws).numpy()
    dx = torch.randint(0, 2 * pad + 1, (batch,), generator=draws).numpy()
    expected = np.empty_like(images.numpy())
    grid = np.arange(side)
    for b in range(batch):
        source = images[b].numpy()[:, :, ::-1] if flip[b] else images[b].numpy()
        rows = reflect(grid + dy[b] - pad, side)
        cols = reflect(grid + dx[b] - pad, side)
        expected[b] = source[:, rows][:, :, cols]
    np.testing.assert_array_equal(out.numpy(), expected)
    assert (dy != pad).any() and (dx != pad).any() and 0 < flip.sum() < batch
    # an interior pixel lands exactly (pad - dy, pad - dx) away
    b = int(np.flatnonzero((dy != pad) & (dx != pad) & ~flip)[0])
    y, x = side // 2, side // 2
    assert torch.equal(out[b, :, y + pad - dy[b], x + pad - dx[b]], images[b, :, y, x])


def test_weak_augment_is_deterministic_given_generator():
    images = torch.randint(0, 255, (8, 3, 16, 16), dtype=torch.uint8)
    a = weak_augment(images, torch.Generator().manual_seed(3))
    b = weak_augment(images, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_weights_round_trip_and_hash_check(tmp_path):
    state = {"w": torch.randn(3, 4), "b": torch.zeros(4)}
    path = save_weights(tmp_path / "model", state, {"kind": "frame"})
    loaded, meta = load_weights(path)
    assert torch.equal(loaded["w"], state["w"]) and meta["kind"] == "frame"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="sha256"):
        load_weights(path)


def test_newer_format_version_is_refused(tmp_path):
    path = save_weights(tmp_path / "model", {"w": torch.ones(1)}, {})
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["format_version"] = 99
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="newer"):
        load_weights(path)


def test_state_is_loaded_without_unpickling_objects(tmp_path):
    save_state(tmp_path / "s.pt", {"epoch": 2, "t": torch.arange(3), "nested": {"a": [1, 2]}})
    state = load_state(tmp_path / "s.pt")
    assert state["epoch"] == 2 and state["nested"]["a"] == [1, 2]
    torch.save({"bad": object()}, tmp_path / "evil.pt")
    with pytest.raises(DataError, match="cannot read checkpoint"):
        load_state(tmp_path / "evil.pt")
