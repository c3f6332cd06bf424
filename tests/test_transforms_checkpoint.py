import json

import pytest
import torch

from fervid.data.transforms import weak_augment
from fervid.errors import DataError
from fervid.runtime.checkpoint import load_state, load_weights, save_state, save_weights


def test_weak_augment_flips_and_shifts_without_changing_content_range():
    images = torch.zeros(64, 3, 32, 32, dtype=torch.uint8)
    images[:, :, 8:12, 4:8] = 255  # a bright square left of centre
    out = weak_augment(images, torch.Generator().manual_seed(0), max_shift=0.125)
    assert out.shape == images.shape and out.dtype == torch.uint8
    centre_x = (out[:, 0].float().sum(1) * torch.arange(32)).sum(1) / out[:, 0].float().sum((1, 2))
    assert (centre_x > 16).any() and (centre_x < 16).any()  # some flipped, some not
    assert not torch.equal(out, images)
    assert out.float().sum((1, 2, 3)).min() > 0  # reflect padding keeps content


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
