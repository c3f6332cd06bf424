"""Who pseudo-labels (src/fervid/stage1/teachers.py): the EMA copy, the model itself, or an
external model file, alone or blended with the EMA teacher by ssl.teacher_blend in (0, 1]."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import fervid.zoo
from fervid.config import load_config
from fervid.errors import ConfigError
from fervid.stage1.teachers import ExternalTeacher, build_teacher

MEAN = torch.tensor([0.5, 0.5, 0.5]).view(3, 1, 1)
STD = torch.tensor([0.25, 0.25, 0.25]).view(3, 1, 1)


class External(nn.Module):
    """A stand-in for an imported FER model: fixed probabilities, records the crops it sees."""

    def __init__(self, probs):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.probs = torch.tensor(probs)
        self.crops = []

    def probabilities(self, crops):
        self.crops.append(crops)
        return self.probs.expand(len(crops), -1)


class FixedLogits(nn.Module):
    """A stand-in EMA teacher: the same logits for every image; counts its calls."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)
        self.calls = 0

    def forward(self, weak):
        self.calls += 1
        return self.logits.expand(len(weak), -1)


def blend_message(blend):
    return f"^{re.escape(f'ssl.teacher_blend: must be > 0 and <= 1, got {blend}')}$"


@pytest.mark.parametrize("blend", [0.0, -0.5, 1.5, 2.0])
def test_teacher_blend_outside_zero_one_is_rejected_when_the_config_is_built(blend):
    with pytest.raises(ConfigError, match=blend_message(blend)):
        load_config(None, [f"ssl.teacher_blend={blend}"])


@pytest.mark.parametrize("blend", [1e-3, 0.5, 1.0])
def test_teacher_blend_in_the_half_open_interval_is_accepted(blend):
    assert load_config(None, [f"ssl.teacher_blend={blend}"]).ssl.teacher_blend == blend
    teacher = ExternalTeacher(External([1.0, 0.0]), MEAN, STD, FixedLogits([0.0, 0.0]), blend)
    assert teacher.blend == blend


def test_teacher_blend_defaults_to_the_external_model_alone_without_an_ema_teacher():
    teacher = ExternalTeacher(External([1.0, 0.0]), MEAN, STD)
    assert teacher.blend == 1.0 and teacher.ema is None


def test_teacher_blend_below_one_needs_the_ema_teacher():
    message = re.escape(
        "ssl.teacher_blend: 0.5 < 1 blends with the EMA teacher; set ssl.teacher=ema "
        "(or ssl.teacher_blend=1)"
    )
    with pytest.raises(ConfigError, match=f"^{message}$"):
        load_config(None, ["ssl.teacher=model", "ssl.teacher_blend=0.5"])
    load_config(None, ["ssl.teacher=model", "ssl.teacher_blend=1"])  # alone: no EMA needed
    ExternalTeacher(External([1.0, 0.0]), MEAN, STD, None, blend=1.0)


def test_external_teacher_sees_the_uint8_crops_of_the_normalised_weak_view():
    external = External([0.25, 0.75])
    teacher = ExternalTeacher(external.train(), MEAN, STD)
    assert external.training is False  # the external model runs in eval mode
    # normalised values whose crops are 0.5 -> 128, 0 -> 0, 1 -> 255 and out-of-range ones
    # clamped: x * 0.25 + 0.5 in [0, 1] -> * 255
    pixel = torch.tensor([0.0, -2.0, 2.0, 4.0, -4.0, 1.0])
    weak = pixel.view(1, 1, 1, 6).expand(2, 3, 1, 6).clone()
    teacher(weak)
    (crops,) = external.crops
    assert crops.dtype == torch.uint8 and crops.shape == (2, 3, 1, 6)
    assert crops[0, 0, 0].tolist() == [128, 0, 255, 255, 0, 191]  # 0.75 * 255 = 191.25


def test_external_teacher_returns_log_probabilities_clamped_at_1e_minus_6():
    teacher = ExternalTeacher(External([0.0, 0.25, 0.75]), MEAN, STD)
    logits = teacher(torch.zeros(2, 3, 4, 4))
    expected = [math.log(1e-6), math.log(0.25), math.log(0.75)]
    torch.testing.assert_close(logits, torch.tensor([expected, expected]))


def test_blended_teacher_mixes_the_two_distributions_by_teacher_blend():
    ema = FixedLogits([math.log(0.5), math.log(0.5), -math.inf])  # softmax [.5, .5, 0]
    teacher = ExternalTeacher(External([1.0, 0.0, 0.0]), MEAN, STD, ema, blend=0.6)
    probs = teacher(torch.zeros(1, 3, 4, 4)).exp()
    # 0.6 * [1, 0, 0] + 0.4 * [.5, .5, 0] = [.8, .2, 0 -> 1e-6]
    torch.testing.assert_close(probs, torch.tensor([[0.8, 0.2, 1e-6]]))
    assert ema.calls == 1


def test_teacher_blend_one_with_an_ema_teacher_uses_the_external_model_alone():
    ema = FixedLogits([0.0, 5.0])
    teacher = ExternalTeacher(External([0.9, 0.1]), MEAN, STD, ema, blend=1.0)
    torch.testing.assert_close(teacher(torch.zeros(1, 3, 2, 2)).exp(), torch.tensor([[0.9, 0.1]]))
    assert ema.calls == 0  # the EMA teacher is not even run


def test_external_teacher_keeps_its_own_copy_of_the_student_normalisation():
    mean, std = MEAN.clone(), STD.clone()
    teacher = ExternalTeacher(External([1.0, 0.0]), mean, std)
    mean += 1
    torch.testing.assert_close(teacher.mean, MEAN)
    torch.testing.assert_close(teacher.std, STD)
    assert set(dict(teacher.named_buffers())) >= {"mean", "std"}


def ssl(teacher="ema", teacher_model=None, teacher_blend=1.0):
    return SimpleNamespace(
        teacher=teacher, teacher_model=teacher_model, teacher_blend=teacher_blend
    )


STUDENT = SimpleNamespace(mean=MEAN, std=STD)


def test_build_teacher_without_a_model_file_is_the_ema_copy_or_the_model_itself():
    ema = FixedLogits([0.0, 0.0])
    assert build_teacher(ssl("ema"), ema, STUDENT, torch.device("cpu")) is ema
    assert build_teacher(ssl("model"), ema, STUDENT, torch.device("cpu")) is None
    assert build_teacher(ssl("ema", teacher_model=""), ema, STUDENT, torch.device("cpu")) is ema


@pytest.fixture
def loaded(monkeypatch):
    """Replace fervid.zoo.load_model by one that records the name and returns External."""
    names = []

    def load_model(name):
        names.append(name)
        return External([0.25, 0.75])

    monkeypatch.setattr(fervid.zoo, "load_model", load_model)
    return names


def test_build_teacher_with_a_model_file_wraps_it_with_the_students_normalisation(loaded):
    ema = FixedLogits([0.0, 0.0])
    teacher = build_teacher(ssl("ema", "fer.safetensors", 0.5), ema, STUDENT, torch.device("cpu"))
    assert loaded == ["fer.safetensors"]
    assert isinstance(teacher, ExternalTeacher) and isinstance(teacher.external, External)
    assert teacher.ema is ema and teacher.blend == 0.5
    torch.testing.assert_close(teacher.mean, MEAN)
    torch.testing.assert_close(teacher.std, STD)


def test_build_teacher_with_a_model_file_and_teacher_model_blends_with_nothing(loaded):
    teacher = build_teacher(
        ssl("model", "fer.safetensors"), FixedLogits([0.0, 0.0]), STUDENT, torch.device("cpu")
    )
    assert teacher.ema is None and teacher.blend == 1.0


def test_build_teacher_moves_the_external_model_and_its_wrapper_to_the_device(loaded):
    """Checked on the meta device, which needs no GPU."""
    teacher = build_teacher(ssl("model", "fer.safetensors"), None, STUDENT, torch.device("meta"))
    assert teacher.mean.device.type == "meta" and teacher.std.device.type == "meta"
    assert teacher.external.scale.device.type == "meta"
