import copy

import pytest
import torch

from fervid.config import ModelConfig
from fervid.models.frame import FrameModel, load_frame_model
from fervid.runtime.checkpoint import save_weights


def small_model() -> FrameModel:
    torch.manual_seed(0)
    return FrameModel(ModelConfig(backbone="fervid_cnn", input_size=32)).eval()


def test_channels_last_gives_the_same_outputs_and_feeds_channels_last_inputs():
    model = small_model()
    fast = copy.deepcopy(model).use_channels_last()
    crops = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    images = fast.normalize(crops)
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert not model.normalize(crops).is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(fast(images), model(model.normalize(crops)), atol=1e-4, rtol=0)


def test_a_channels_last_model_saves_and_loads_for_inference_in_channels_last(tmp_path):
    model = small_model().use_channels_last()
    meta = {"kind": "frame", "config": {"model": {"backbone": "fervid_cnn", "input_size": 32}}}
    path = save_weights(tmp_path / "model", model.state_dict(), meta)
    loaded = load_frame_model(path)
    assert not loaded.training
    assert loaded.memory_format == torch.channels_last
    crops = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(loaded.probabilities(crops), model.probabilities(crops))


@pytest.mark.slow
def test_a_mobilenetv2_trained_through_timm_loads_without_timm_and_gives_the_same_outputs(
    tmp_path,
):
    from fervid.models.mobilenet import MobileNetV2

    torch.manual_seed(0)
    config = ModelConfig(backbone="mobilenetv2_100", input_size=64)
    trained = FrameModel(config)  # timm's network, as stage 1 trains it
    assert type(trained.backbone).__module__.startswith("timm")
    with torch.no_grad():  # running statistics away from their defaults, as after training
        for module in trained.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    trained.use_channels_last().eval()  # the layout loading gives, so the sums run alike
    meta = {"kind": "frame", "config": {"model": {"backbone": "mobilenetv2_100", "input_size": 64}}}
    loaded = load_frame_model(save_weights(tmp_path / "model", trained.state_dict(), meta))
    assert isinstance(loaded.backbone, MobileNetV2)
    assert list(loaded.state_dict()) == list(trained.state_dict())
    crops = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        expected = trained.features(trained.prepare(crops))
        torch.testing.assert_close(loaded.features(loaded.prepare(crops)), expected)
    torch.testing.assert_close(loaded.probabilities(crops), trained.probabilities(crops))


@pytest.mark.parametrize(
    "backbone",
    ["fervid_cnn", "fervid_mobilenetv2", "mobilenetv2_100", "mobilenetv3_small_050", "lcnet_050"],
)
def test_the_feature_width_read_from_the_backbone_is_the_width_of_its_output(backbone):
    """feature_dim reads the width without running the network (start-up time); timm's
    MobileNetV3 and LCNet add a projection after num_features, so the width must be the
    projection's."""
    import timm

    from fervid.models import mobilenet, small_cnn
    from fervid.models.frame import feature_dim

    if backbone == "fervid_mobilenetv2":
        network = mobilenet.create("mobilenetv2_100")
    elif backbone in small_cnn.NAMES:
        network = small_cnn.create(backbone, pretrained=False, num_classes=0)
    else:
        network = timm.create_model(backbone, pretrained=False, num_classes=0)
    network.eval()
    with torch.no_grad():
        width = network(torch.zeros(1, 3, 64, 64)).shape[1]
    assert feature_dim(network, 64) == width
