import pytest
import yaml

from fervid.config import RECIPE_DIR, Config, load_config, recipe_path, to_dict
from fervid.errors import ConfigError
from tests.helpers import REPO


def test_recipe_and_overrides_resolve_to_typed_values():
    config = load_config(
        "demo", ["train.epochs=3", "optim.lr=0.01", "data.extra_labelled=a,b", "train.ema=true"]
    )
    assert config.train.epochs == 3 and isinstance(config.train.epochs, int)
    assert config.optim.lr == 0.01
    assert config.data.extra_labelled == ["a", "b"]
    assert config.train.ema is True


def test_no_recipe_gives_dataclass_defaults():
    assert to_dict(load_config(None, [])) == to_dict(Config())


def test_unknown_key_names_the_key_and_suggests():
    with pytest.raises(ConfigError, match=r"train\.epoch'.*did you mean 'epochs'"):
        load_config(None, ["train.epoch=3"])


def test_unknown_section_is_rejected():
    with pytest.raises(ConfigError, match="unknown config key 'trainer'"):
        load_config(None, ["trainer.epochs=3"])


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"train\.epochs: expected an integer"):
        load_config(None, ["train.epochs=many"])
    with pytest.raises(ConfigError, match=r"train\.ema: expected true or false"):
        load_config(None, ["train.ema=maybe"])


def test_override_without_equals_is_rejected():
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(None, ["train.epochs"])


def test_recipe_file_with_unknown_key(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  backbone: resnet18\n  depth: 3\n")
    with pytest.raises(ConfigError, match=r"model\.depth"):
        load_config(recipe)
    recipe.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(recipe)


def test_unknown_recipe_lists_packaged_ones():
    with pytest.raises(ConfigError, match="demo"):
        recipe_path("nonexistent_recipe")


RECIPES = sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))
RECIPES_PAGE = (REPO / "docs" / "recipes.md").read_text()

WHAT_EACH_RECIPE_IS = {
    "default": lambda c: c.model.backbone == "fervid_cnn" and not c.ssl.enabled,
    "demo": lambda c: (
        (c.model.backbone, c.model.weights, c.train.epochs, c.train.steps_per_epoch)
        == ("mobilenetv2_100", "package", 4, 100)
        and c.data.labels_per_class == 40
        and (c.ssl.enabled, c.ssl.threshold, c.ssl.flex_warmup, c.ssl.debias_lambda)
        == (True, "flex", False, 0.5)
        and (c.temporal.window, c.temporal.normalize) == (64, "video")
    ),
    "affwild2_resnet50": lambda c: (
        (c.model.backbone, c.model.pretrained, c.model.input_size) == ("resnet50", True, 112)
        and (c.ssl.enabled, c.ssl.threshold, c.ssl.debias_lambda) == (True, "flex", 0.5)
        and c.ssl.rampup_epochs == 1
        and c.train.precision == "bf16"
    ),
    "affwild2_vits16": lambda c: (
        (c.model.backbone, c.model.pretrained, c.model.input_size)
        == ("vit_small_patch16_224", True, 112)
        and (c.ssl.enabled, c.ssl.threshold, c.ssl.debias_lambda) == (True, "flex", 0.5)
    ),
    "affwild2_temporal": lambda c: (
        (c.temporal.train_store, c.temporal.val_store, c.temporal.frame_model)
        == ("stores/train", "stores/validation", "runs/r50")
        and (c.temporal.window, c.temporal.input, c.temporal.normalize)
        == (128, "features", "video")
    ),
    "affwild2_onnx_temporal": lambda c: (
        c.temporal.input == "features"
        and c.temporal.normalize == "video"
        and c.temporal.window == 128
    ),
}
"""What each packaged recipe is for, asserted on its resolved config: a new recipe needs an
entry here (and a line in docs/recipes.md)."""


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_packaged_recipe_is_what_it_says_and_documented(recipe):
    assert recipe in WHAT_EACH_RECIPE_IS, f"add what {recipe}.yaml is for to WHAT_EACH_RECIPE_IS"
    config = load_config(recipe)
    assert WHAT_EACH_RECIPE_IS[recipe](config), to_dict(config)
    assert f"`{recipe}`" in RECIPES_PAGE, f"docs/recipes.md does not name {recipe}"
    assert yaml.safe_load(recipe_path(recipe).read_text())["_doc"].strip()


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.slow
def test_every_packaged_recipe_resolves_and_builds_its_model(recipe):
    import torch

    from fervid.models.frame import FrameModel

    config = load_config(recipe, ["model.pretrained=false"])
    model = FrameModel(config.model).eval()
    size = config.model.input_size
    assert model(torch.zeros(1, 3, size, size)).shape == (1, 8)
