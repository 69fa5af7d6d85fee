"""Parameters: validation messages, presets, TOML round trip."""

import dataclasses

import pytest

from hw.params import PRESETS, AcceleratorParams, dump_toml, from_dict, load_toml, preset


@pytest.mark.parametrize("name", PRESETS)
def test_toml_round_trip(name, tmp_path):
    p = PRESETS[name]
    path = tmp_path / f"{name}.toml"
    path.write_text(dump_toml(p))
    assert load_toml(path) == p
    assert load_toml(path).hardware_hash == p.hardware_hash


def test_eyeriss_preset_is_the_chip():
    p = preset("eyeriss")
    assert (p.rows, p.cols, p.num_pes, p.data_width) == (12, 14, 168, 16)
    assert (p.ifmap_spad_depth, p.filter_spad_depth, p.psum_spad_depth) == (12, 224, 24)
    assert p.glb_kib == 108 and p.glb_bank_words == 512
    assert (p.rlc_run_bits, p.rlc_level_bits, p.rlc_word_bits, p.rlc_pairs_per_word) == \
        (5, 16, 64, 3)


@pytest.mark.parametrize("field, value, message", [
    ("data_width", 40, r"data_width = 40 is out of range: allowed 4\.\.16"),
    ("data_width", 3, r"data_width = 3 is out of range: allowed 4\.\.16"),
    ("rows", 0, r"rows = 0 is out of range: allowed 1\.\.64"),
    ("psum_width", 12, r"psum_width = 12 is out of range: allowed 16\.\.64"),
    ("dram_width", 48, r"dram_width = 48 is invalid: allowed a power of two"),
    ("rlc_word_bits", 12, r"rlc_word_bits = 12 is out of range: allowed 14\.\.512"),
    ("dataflows", ("rs", "xx"), r"dataflows = \['rs', 'xx'\] is invalid"),
    ("dataflows", (), r"dataflows = \[\] is invalid"),
    ("rows", 2.5, r"rows must be an integer in 1\.\.64, not 2\.5"),
    ("rows", True, r"rows must be an integer"),
    ("name", "my design", r"name must be an identifier"),
    ("counters", "some", r"counters = 'some' is invalid: allowed 'all', 'cycles'"),
])
def test_bad_field_names_field_value_and_range(field, value, message):
    with pytest.raises(ValueError, match=message):
        PRESETS["tiny"].replace(**{field: value})


def test_params_are_frozen_and_dataflows_canonical():
    p = AcceleratorParams(dataflows=("os", "rs"))
    assert p.dataflows == ("rs", "os")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.rows = 5


def test_hash_ignores_the_name_only():
    a = PRESETS["tiny"]
    assert a.replace(name="other").hardware_hash == a.hardware_hash
    assert a.replace(cols=5).hardware_hash != a.hardware_hash


def test_toml_from_preset_with_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('preset = "eyeriss"\nname = "wide"\ncols = 16\n')
    p = load_toml(path)
    assert (p.name, p.rows, p.cols, p.data_width) == ("wide", 12, 16, 16)


def test_toml_errors_are_one_clear_line(tmp_path):
    with pytest.raises(ValueError, match="cannot read config"):
        load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("rows = [\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_toml(bad)
    bad.write_text("colums = 3\n")
    with pytest.raises(ValueError, match="unknown field 'colums'"):
        load_toml(bad)
    with pytest.raises(ValueError, match="unknown preset 'big'"):
        from_dict({"preset": "big"})
