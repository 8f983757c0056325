"""Config validation: every bad value fails on construction with a one-line UserError naming the field."""

from __future__ import annotations

import math

import pytest

from animevae.config import DataConfig, ModelConfig, TrainConfig, from_dict, inherited_settings, to_dict
from animevae.errors import UserError


def _one_line(e) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


def test_defaults_are_valid_and_the_seeds():
    t = TrainConfig()
    assert (t.epochs, t.batch_size, t.lr, t.beta) == (100, 64, 1e-3, 1.0)
    m = ModelConfig()
    assert (m.image_size, m.latent_dim, m.num_layers, m.base_channels, m.negative_slope) == (96, 256, 5, 32, 0.2)
    assert DataConfig().source == "DrishtiSharma/Anime-Face-Dataset"


@pytest.mark.parametrize("lr", [-1e-3, 0.0, math.nan, math.inf])
def test_bad_lr(lr):
    with pytest.raises(UserError) as e:
        TrainConfig(lr=lr)
    assert "--lr" in _one_line(e)


@pytest.mark.parametrize("beta", [-0.1, math.nan, math.inf])
def test_bad_beta(beta):
    with pytest.raises(UserError, match="--beta"):
        TrainConfig(beta=beta)


def test_beta_zero_allowed():
    assert TrainConfig(beta=0).beta == 0.0


@pytest.mark.parametrize("weight", [-1.0, math.nan, math.inf])
def test_bad_freq_weight(weight):
    with pytest.raises(UserError, match="--freq-weight"):
        TrainConfig(freq_weight=weight)


def test_fine_tuning_a_frequency_run_keeps_its_objective_and_weight_unless_given():
    source = {"train": to_dict(TrainConfig(objective="frequency", freq_weight=30.0, lr=5e-3))}
    kept = inherited_settings(source, {})
    assert kept["objective"] == "frequency" and kept["freq_weight"] == 30.0 and "lr" not in kept
    assert "freq_weight" not in inherited_settings(source, {"freq_weight": 1.0})


@pytest.mark.parametrize("precision", ["fp64", "BF16", "", "half"])
def test_bad_precision(precision):
    with pytest.raises(UserError) as e:
        TrainConfig(precision=precision)
    msg = _one_line(e)
    assert "precision" in msg and "bf16" in msg and "fp32" in msg


@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16", "fp16"])
def test_good_precision(precision):
    assert TrainConfig(precision=precision).precision == precision


@pytest.mark.parametrize(
    "cls, field, value",
    [
        (TrainConfig, "epochs", "10"),
        (TrainConfig, "epochs", 10.0),
        (TrainConfig, "epochs", True),
        (TrainConfig, "batch_size", 1.5),
        (TrainConfig, "lr", "1e-3"),
        (TrainConfig, "hflip", 1),
        (TrainConfig, "precision", None),
        (TrainConfig, "init_from", 3),
        (ModelConfig, "image_size", "96"),
        (ModelConfig, "latent_dim", None),
        (ModelConfig, "negative_slope", "0.2"),
        (DataConfig, "source", 5),
        (DataConfig, "limit", "100"),
        (DataConfig, "convert_to_rgb", "yes"),
    ],
)
def test_wrong_types(cls, field, value):
    with pytest.raises(UserError) as e:
        cls(**{field: value})
    msg = _one_line(e)
    assert f"'{field}'" in msg and repr(value) in msg


def test_int_accepted_for_float_and_converted():
    t = TrainConfig(lr=1, rotation=5)
    assert t.lr == 1.0 and type(t.lr) is float
    assert type(t.rotation) is float
    assert type(ModelConfig(negative_slope=0).negative_slope) is float


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"epochs": 0}, "--epochs"),
        ({"batch_size": -4}, "--batch-size"),
        ({"val_fraction": 1.0}, "--val-fraction"),
        ({"val_fraction": -0.1}, "--val-fraction"),
        ({"keep_last": -1}, "--keep-last"),
        ({"rotation": 181}, "--rotation"),
        ({"rotation": -5}, "--rotation"),
        ({"freeze": "both"}, "freeze"),
        ({"rotation_fill": "wrap"}, "rotation_fill"),
        ({"interpolation": "lanczos"}, "interpolation"),
        ({"sample_count": 0}, "--sample-count"),
    ],
)
def test_out_of_range_train(kwargs, needle):
    with pytest.raises(UserError) as e:
        TrainConfig(**kwargs)
    assert needle in _one_line(e)


@pytest.mark.parametrize("kwargs, needle", [({"limit": 0}, "--limit"), ({"builtin_count": 0}, "builtin_count")])
def test_out_of_range_data(kwargs, needle):
    with pytest.raises(UserError, match=needle):
        DataConfig(**kwargs)


def test_from_dict_unknown_keys():
    with pytest.raises(UserError) as e:
        from_dict(TrainConfig, {"epochs": 3, "learning_rate": 0.1, "bacth_size": 2}, where="train.toml")
    msg = _one_line(e)
    assert msg.startswith("train.toml")
    assert "bacth_size" in msg and "learning_rate" in msg
    assert "lr" in msg and "batch_size" in msg  # lists what is known


def test_from_dict_not_a_table():
    with pytest.raises(UserError, match="expected a table"):
        from_dict(ModelConfig, [96, 5])


def test_from_dict_validates_values():
    with pytest.raises(UserError, match="'epochs'"):
        from_dict(TrainConfig, {"epochs": "10"})


@pytest.mark.parametrize(
    "cfg", [TrainConfig(epochs=3, lr=2e-4, freeze="decoder", init_from="x"), ModelConfig(image_size=48, num_layers=4), DataConfig(source="builtin", limit=7)]
)
def test_to_dict_from_dict_round_trip(cfg):
    assert from_dict(type(cfg), to_dict(cfg)) == cfg
