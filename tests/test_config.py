import pytest

from fervid.config import RECIPE_DIR, Config, load_config, recipe_path, to_dict
from fervid.errors import ConfigError


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


@pytest.mark.parametrize("recipe", sorted(p.stem for p in RECIPE_DIR.glob("*.yaml")))
def test_every_packaged_recipe_resolves_and_builds_its_model(recipe):
    import torch

    from fervid.models.frame import FrameModel

    config = load_config(recipe, ["model.pretrained=false"])
    model = FrameModel(config.model).eval()
    size = config.model.input_size
    assert model(torch.zeros(1, 3, size, size)).shape == (1, 8)
