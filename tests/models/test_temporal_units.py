"""Fast unit tests of the Temporal Encoder (``fervid.models.temporal``) with values worked out by
hand: the positional encodings, the layers the config builds, the input projection with its
folded standardisation, the frame-head input, the window limit, the gathered windows and the
model file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fervid.config import TemporalConfig, to_dict
from fervid.errors import ConfigError, DataError
from fervid.models.temporal import (
    LearnedPosition,
    SinusoidalPosition,
    TemporalEncoder,
    gather_windows,
    load_temporal_model,
)
from fervid.models.windows import VideoStandardised, Windows
from fervid.runtime.checkpoint import save_weights

SMALL = dict(window=5, width=4, heads=2, ffn_width=6, layers=1, dropout=0.0, input_dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


# ----------------------------------------------------------------------------------------------
# Positional encodings


def test_the_sinusoidal_table_is_sin_and_cos_of_the_position_over_10000_to_2i_over_width():
    # width 4: frequencies 10000^(-0/4) = 1 and 10000^(-2/4) = 1/100
    position = SinusoidalPosition(4, 101)
    for p in (0, 1, 7, 100):
        expected = [math.sin(p), math.cos(p), math.sin(p / 100), math.cos(p / 100)]
        torch.testing.assert_close(
            position.table[p], torch.tensor(expected), rtol=0, atol=2e-6, msg=f"position {p}"
        )
    assert position.table.shape == (101, 4) and position.table.dtype == torch.float32
    # an odd width keeps the sine of its last frequency: 10000^(-2/3)
    odd = SinusoidalPosition(3, 2)
    f = 10_000 ** (-2 / 3)
    torch.testing.assert_close(
        odd.table, torch.tensor([[0.0, 1.0, 0.0], [math.sin(1), math.cos(1), math.sin(f)]])
    )


def test_the_sinusoidal_table_is_a_buffer_left_out_of_the_state_dict():
    position = SinusoidalPosition(4, 3)
    assert "table" in dict(position.named_buffers())
    assert "table" not in position.state_dict()


@pytest.mark.parametrize("kind", [SinusoidalPosition, LearnedPosition])
def test_a_positional_encoding_adds_its_first_rows_in_the_inputs_dtype(kind):
    position = kind(4, 6)
    x = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4)
    torch.testing.assert_close(position(x), x + position.table[:3].detach())
    half = position(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half, (x + position.table[:3].detach()).to(torch.bfloat16))


def test_the_learned_table_is_a_parameter_drawn_with_std_0_02():
    torch.manual_seed(0)
    position = LearnedPosition(8, 512)
    assert isinstance(position.table, nn.Parameter) and position.table.shape == (512, 8)
    # 4096 draws: the sample std is within a few percent of 0.02
    assert 0.019 < position.table.std().item() < 0.021
    assert abs(position.table.mean().item()) < 0.002


# ----------------------------------------------------------------------------------------------
# The Temporal Encoder


def test_the_encoder_is_built_from_its_config():
    config = TemporalConfig(window=5, width=8, heads=2, ffn_width=12, layers=3, dropout=0.25,
                            input_dropout=0.125, positional="learned")  # fmt: skip
    torch.manual_seed(0)
    model = TemporalEncoder(6, config)
    assert model.config is config and model.feature_dim == 6
    assert "frame_head_weight" not in dict(model.named_buffers())
    torch.testing.assert_close(model.feature_mean, torch.zeros(6))
    torch.testing.assert_close(model.feature_std, torch.ones(6))
    assert (model.input.in_features, model.input.out_features) == (6, 8)
    assert model.input_norm.normalized_shape == (8,)
    assert model.input_drop.p == 0.125
    # the missing token: 8 draws of std 0.02, none 0 and none past 5 std
    assert model.missing_token.shape == (8,)
    assert (model.missing_token != 0).all() and model.missing_token.abs().max() < 0.1
    assert isinstance(model.position, LearnedPosition) and model.position.table.shape == (5, 8)
    assert len(model.encoder.layers) == 3
    for layer in model.encoder.layers:
        assert layer.self_attn.embed_dim == 8 and layer.self_attn.num_heads == 2
        assert layer.self_attn.batch_first and layer.norm_first
        assert layer.linear1.out_features == 12 and layer.dropout.p == 0.25
        assert layer.activation is F.gelu
    assert isinstance(model.encoder.norm, nn.LayerNorm)
    assert model.encoder.norm.normalized_shape == (8,)
    assert model.encoder.enable_nested_tensor is False
    assert (model.head.in_features, model.head.out_features) == (8, 8)

    post_norm = TemporalEncoder(6, TemporalConfig(**SMALL, norm_first=False), num_classes=3)
    assert post_norm.encoder.norm is None and not post_norm.encoder.layers[0].norm_first
    assert isinstance(post_norm.position, SinusoidalPosition)
    assert post_norm.head.out_features == 3


def test_an_encoder_of_logits_holds_the_frozen_frame_head_and_reads_its_classes():
    model = TemporalEncoder(6, TemporalConfig(**SMALL, input="logits"), num_classes=3)
    buffers = dict(model.named_buffers())
    assert buffers["frame_head_weight"].shape == (3, 6) and not buffers["frame_head_weight"].any()
    assert buffers["frame_head_bias"].shape == (3,) and not buffers["frame_head_bias"].any()
    assert model.feature_mean.shape == model.feature_std.shape == (3,)
    assert model.input.in_features == 3


def layer_norm(z: np.ndarray) -> np.ndarray:
    """LayerNorm's default (weight 1, bias 0, eps 1e-5) over the last axis."""
    return (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-5)


def test_the_projection_is_linear_of_the_standardised_inputs_then_layer_norm():
    model = TemporalEncoder(2, TemporalConfig(**SMALL)).eval()
    weight = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]])
    bias = np.array([0.5, 0.0, -1.0, 0.0])
    with torch.no_grad():
        model.input.weight.copy_(torch.tensor(weight))
        model.input.bias.copy_(torch.tensor(bias))
    model.set_feature_stats(np.array([1.0, 1.0]), np.array([0.5, 2.0]))
    assert model.feature_mean.dtype == model.feature_std.dtype == torch.float32
    x = np.array([[2.0, 5.0], [1.0, 1.0]])
    standardised = (x - [1, 1]) / [0.5, 2]  # (2, 2) and (0, 0)
    expected = layer_norm(standardised @ weight.T + bias)
    got = model.project(torch.tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_an_encoder_of_logits_reads_the_frame_heads_logits_unless_given_them():
    model = TemporalEncoder(3, TemporalConfig(**SMALL, input="logits"), num_classes=2).eval()
    head = nn.Linear(3, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, -1.0, 1.0]]))
        head.bias.copy_(torch.tensor([0.5, -0.5]))
    model.set_frame_head(head)
    assert not model.frame_head_weight.requires_grad
    torch.testing.assert_close(model.frame_head_bias, torch.tensor([0.5, -0.5]))
    x = torch.tensor([[1.0, 2.0, 3.0]])
    # logits: 1 + 0 + 6 + 0.5 = 7.5 and 0 - 2 + 3 - 0.5 = 0.5
    torch.testing.assert_close(model.inputs(x), torch.tensor([[7.5, 0.5]]))
    logits = torch.tensor([[7.5, 0.5]])
    torch.testing.assert_close(model.project(x), model.project(logits, given_logits=True))
    features = TemporalEncoder(3, TemporalConfig(**SMALL))
    assert features.inputs(x) is x


def test_a_window_longer_than_the_model_takes_is_refused():
    model = TemporalEncoder(2, TemporalConfig(**SMALL)).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 5, 2), torch.zeros(1, 5, dtype=torch.bool)).shape == (1, 5, 8)
        with pytest.raises(ValueError) as error:
            model(torch.zeros(1, 6, 2), torch.zeros(1, 6, dtype=torch.bool))
    assert str(error.value) == "window of 6 frames; this model takes at most 5"


def test_a_masked_frame_reads_the_missing_token_whatever_its_features():
    torch.manual_seed(0)
    model = TemporalEncoder(2, TemporalConfig(**SMALL)).eval()
    features = torch.randn(2, 3, 2)
    mask = torch.tensor([[False, True, False], [True, True, True]])  # window 1: no face
    changed = features.clone()
    changed[mask] = 50.0
    with torch.no_grad():
        logits = model(features, mask)
        assert torch.isfinite(logits).all()
        torch.testing.assert_close(model(changed, mask), logits)
        # a window of only missing tokens: every position sees the same token plus its position
        tokens = model.position(model.missing_token.expand(1, 3, 4))
        expected = model.head(model.encoder(tokens))
    torch.testing.assert_close(logits[1:], expected, rtol=1e-5, atol=1e-6)


def test_under_autocast_the_missing_token_enters_the_encoder_in_the_frames_dtype():
    # on the CPU, autocast keeps the projection's LayerNorm in bfloat16: a float32 token would
    # turn the whole window into float32 (torch.where promotes)
    torch.manual_seed(0)
    model = TemporalEncoder(2, TemporalConfig(**SMALL)).eval()
    seen = []
    model.position.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    mask = torch.tensor([[False, True, False]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.randn(1, 3, 2), mask)
    assert seen == [torch.bfloat16]


def test_an_encoder_of_logits_can_be_given_the_logits():
    torch.manual_seed(0)
    model = TemporalEncoder(3, TemporalConfig(**SMALL, input="logits"), num_classes=2).eval()
    model.set_frame_head(nn.Linear(3, 2))
    features, mask = torch.randn(1, 4, 3), torch.zeros(1, 4, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(
            model(model.inputs(features), mask, given_logits=True), model(features, mask)
        )


def test_the_model_reads_a_stores_features_as_its_config_says():
    features, has_image = np.ones((3, 2), np.float32), np.ones(3, bool)
    video = TemporalEncoder(2, TemporalConfig(**SMALL, normalize="video"))
    assert isinstance(video.normalised(features, has_image, [slice(0, 3)]), VideoStandardised)
    plain = TemporalEncoder(2, TemporalConfig(**SMALL))
    assert plain.normalised(features, has_image, [slice(0, 3)]) is features


# ----------------------------------------------------------------------------------------------
# Windows and the model file


def test_gathered_windows_carry_the_labels_of_real_frames_and_minus_one_elsewhere():
    features = np.arange(12, dtype=np.float16).reshape(6, 2)
    has_image = np.array([True, False, True, True, True, True])
    labels = np.array([3, 4, -1, 7, 0, 1], dtype=np.int8)
    windows = Windows(np.array([0, 4]), np.array([3, 2]))
    batch = gather_windows(features, has_image, labels, windows, np.array([1, 0]), 3)
    # window 1: rows 4, 5, padding; window 0: rows 0, 1 (no face), 2 (not annotated)
    assert batch.labels.dtype == torch.int64
    assert batch.labels.tolist() == [[0, 1, -1], [3, 4, -1]]
    assert batch.mask.dtype == torch.bool
    assert batch.mask.tolist() == [[False, False, True], [False, True, False]]
    assert batch.features.dtype == torch.float32
    torch.testing.assert_close(
        batch.features, torch.tensor([[[8, 9], [10, 11], [0, 0]], [[0, 1], [2, 3], [4, 5.0]]])
    )
    assert batch.real.tolist() == [[True, True, False], [True, True, True]]
    assert batch.rows.tolist() == [[4, 5, 4], [0, 1, 2]]
    unlabelled = gather_windows(features, has_image, None, windows, np.array([1, 0]), 3)
    assert unlabelled.labels.dtype == torch.int64 and (unlabelled.labels == -1).all()
    assert unlabelled.labels.shape == (2, 3)


def save_temporal(path, kind="temporal"):
    config = TemporalConfig(**SMALL)
    torch.manual_seed(3)
    model = TemporalEncoder(2, config)
    meta = {"kind": kind, "config": {"temporal": to_dict(config)}, "feature_dim": 2}
    return model, save_weights(path, model.state_dict(), meta)


def test_a_temporal_model_is_loaded_from_its_file_or_run_folder_in_eval_mode(tmp_path):
    model, path = save_temporal(tmp_path / "run" / "model")
    for where in (path, tmp_path / "run", str(path)):
        loaded, meta = load_temporal_model(where)
        assert not loaded.training
        assert loaded.config == model.config and loaded.feature_dim == 2
        assert meta == json.loads(path.with_suffix(".json").read_text())
        for name, tensor in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], tensor), name


def test_another_kind_of_model_file_is_not_loaded_as_a_temporal_model(tmp_path):
    _, path = save_temporal(tmp_path / "frame", kind="frame")
    with pytest.raises(DataError) as error:
        load_temporal_model(path)
    assert str(error.value) == f"{tmp_path / 'frame.json'}: not a temporal model (kind 'frame')"
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    del meta["kind"]
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"not a temporal model \(kind None\)$"):
        load_temporal_model(path)


def test_a_wrong_key_in_a_temporal_models_config_is_named_under_temporal(tmp_path):
    _, path = save_temporal(tmp_path / "model")
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["config"]["temporal"]["windw"] = 8
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=r"^unknown config key 'temporal\.windw'; did you mean"):
        load_temporal_model(path)
