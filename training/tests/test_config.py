"""The config: unknown and removed keys stop with a message that names them."""

import pytest

from because_train.config import load_config
from because_train.modeling import SCRATCH_SIZES, scratch_size


def test_unknown_key_names_the_key_and_the_known_ones() -> None:
    with pytest.raises(ValueError, match="config.train: unknown key 'epochz'; known: epochs"):
        load_config(None, {"train.epochz": 3})


@pytest.mark.parametrize("value", [True, False])
def test_quantize_is_refused_int8_ships_as_a_graph(value: bool) -> None:
    with pytest.raises(ValueError, match="config.export.quantize: int8 is a graph every package ships"):
        load_config(None, {"export.quantize": value})


def test_one_scratch_size_table_with_the_embedded_models_tiny() -> None:
    assert scratch_size("scratch:tiny") == SCRATCH_SIZES["tiny"]
    assert SCRATCH_SIZES["tiny"].hidden == 256 and SCRATCH_SIZES["tiny"].layers == 4
    assert scratch_size("HuggingFaceTB/SmolLM2-135M") is None
    with pytest.raises(ValueError, match="rgen.llm.base: unknown scratch size 'huge'"):
        scratch_size("scratch:huge", "rgen.llm.base")


def test_selection_metric_is_accuracy_or_macro_f1() -> None:
    assert load_config(None).train.selection == "accuracy"
    assert load_config(None, {"train.selection": "macro_f1"}).train.selection == "macro_f1"
    with pytest.raises(ValueError, match="config.train.selection: 'f1'; expected one of accuracy, macro_f1"):
        load_config(None, {"train.selection": "f1"})


def test_calibrate_on_names_data_sources(tmp_path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[data.sources]]\nname = "a"\ntrain = "x.jsonl"\nvalidation_share = 0.1\n[export]\ncalibrate_on = ["b"]\n'
    )
    with pytest.raises(ValueError, match="calibrate_on: b is not a data source; known: a"):
        load_config(cfg)


def test_registers_need_two_sources() -> None:
    with pytest.raises(ValueError, match="config.prior.registers: needs at least 2 data sources"):
        load_config(None, {"prior.registers": True})
