"""The energy model: unit-cost arithmetic against hand-computed cases, the tables, user TOML
tables and their errors, and the mapping from the model's counters to levels."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from gen.energy import (COMPONENTS, EYERISS, HOROWITZ, LEVELS, TABLES, UNCHARGED,
                        component_accesses, component_bits, energy, level_words, load_table,
                        psum_forward_words, rf_pj, sram_pj)
from gen.mapper import map_layer
from gen.perf import COUNTERS, Perf, estimate
from gen.program import pass_plan
from gen.workload import ConvLayer, parse_layer
from hw.params import preset

EYE = preset("eyeriss")     # 16-bit data, 48-bit psums, 64-bit DRAM / GLB words
TINY = preset("tiny")       # 8-bit data, 24-bit psums, 64-bit DRAM / GLB words

#: One access of each component, in counts chosen to be told apart.
ACC = {"mac": 10, "ifmap_spad": 4, "filter_spad": 6, "psum_spad": 2, "ifmap_net": 3,
       "filter_net": 5, "psum_fwd": 1, "glb": 2, "psum_buf": 1, "dram": 1}


def test_levels_and_components():
    assert LEVELS == ("mac", "rf", "inter_pe", "glb", "dram")
    assert {c.level for c in COMPONENTS} == set(LEVELS)
    assert set(TABLES) == {"eyeriss", "horowitz"}
    assert component_bits(EYE) == {"mac": None, "ifmap_spad": 16, "filter_spad": 16,
                                   "psum_spad": 48, "ifmap_net": 16, "filter_net": 16,
                                   "psum_fwd": 48, "glb": 64, "psum_buf": 48, "dram": 64}


def test_every_counter_is_charged_or_said_not_to_be():
    charged = {n for c in COMPONENTS for n in c.counters}
    assert not charged & set(UNCHARGED)
    assert charged | set(UNCHARGED) == set(COUNTERS)


def test_eyeriss_table_by_hand():
    e = energy(ACC, EYERISS, EYE)
    # psums are 48 bits = 3 data words; GLB and DRAM words 64 bits = 4 data words
    want = {"mac": 10 * 1, "rf": (4 + 6 + 2 * 3) * 1, "inter_pe": (3 + 5 + 1 * 3) * 2,
            "glb": (2 * 4 + 1 * 3) * 6, "dram": 1 * 4 * 200}
    assert e["levels"] == pytest.approx(want)
    assert e["total"] == pytest.approx(10 + 16 + 22 + 66 + 800)
    # the per-level data words are table-independent
    assert level_words(ACC, EYE) == pytest.approx(
        {"mac": 10, "rf": 16, "inter_pe": 11, "glb": 11, "dram": 4})


def test_eyeriss_table_on_an_8_bit_design():
    # costs are per data word of the design: 8-bit data, 24-bit psums (3 words), 64-bit
    # DRAM words (8 words)
    e = energy(ACC, EYERISS, TINY)
    assert e["levels"] == pytest.approx({"mac": 10, "rf": 4 + 6 + 6, "inter_pe": 2 * (3 + 5 + 3),
                                         "glb": 6 * (2 * 8 + 3), "dram": 200 * 8})


def test_horowitz_table_by_hand():
    costs = HOROWITZ.unit_costs(EYE)
    rf24 = 0.12 + 0.11 * math.log2(24 / 16) / 2      # psum spad: 24 words, between 16 and 64
    assert costs["mac"] == pytest.approx(0.18 + 0.62)
    assert costs["ifmap_spad"] == pytest.approx(0.12)     # 12 words <= 16
    assert costs["filter_spad"] == pytest.approx(0.23)    # 224 words >= 64
    assert costs["psum_spad"] == pytest.approx(rf24)
    assert costs["glb"] == costs["psum_buf"] == pytest.approx(11.0)  # 108 KiB = 55296 words
    assert costs["dram"] == 640.0 and costs["ifmap_net"] == pytest.approx(0.24)
    e = energy(ACC, HOROWITZ, EYE)
    want = {"mac": 10 * 0.8,
            "rf": 4 * 0.12 + 6 * 0.23 + 2 * 3 * rf24,
            "inter_pe": (3 + 5 + 1 * 3) * 0.24,
            "glb": (2 * 4 + 1 * 3) * 11.0,
            "dram": 1 * 4 * 640.0}
    assert e["levels"] == pytest.approx(want)
    assert e["total"] == pytest.approx(sum(want.values()))


def test_horowitz_table_on_an_8_bit_design():
    # Horowitz quotes 16-bit accesses: an 8-bit one costs half, a 64-bit DRAM word 4 x 640;
    # the tiny preset's 8 KiB global buffer is 4K 16-bit words (8 pJ)
    costs = HOROWITZ.unit_costs(TINY)
    assert costs["glb"] == pytest.approx(8.0)
    assert costs["filter_spad"] == pytest.approx(0.12 + 0.11 * math.log2(32 / 16) / 2)
    e = energy(ACC, HOROWITZ, TINY)
    assert e["levels"]["dram"] == pytest.approx(4 * 640)
    assert e["levels"]["mac"] == pytest.approx(8.0)
    assert e["levels"]["rf"] == pytest.approx(
        4 * 0.5 * 0.12 + 6 * 0.5 * costs["filter_spad"] + 2 * 1.5 * costs["psum_spad"])


@pytest.mark.parametrize("depth, pj", [(1, 0.12), (16, 0.12), (32, 0.175), (64, 0.23),
                                       (224, 0.23)])
def test_rf_sizes(depth, pj):
    assert rf_pj(depth) == pytest.approx(pj)


@pytest.mark.parametrize("words, pj", [(512, 8.0), (4096, 8.0), (8192, 9.0), (16384, 10.0),
                                       (32768, 11.0), (1 << 20, 11.0)])
def test_sram_sizes(words, pj):
    assert sram_pj(words) == pytest.approx(pj)


# ---- user tables ------------------------------------------------------------------------------

def test_user_table(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text('name = "mine"\nunit = "fJ"\nword_bits = 8\n'
                 "mac = 2\nrf = 0.5\ninter_pe = 1\nglb = 10\ndram = 100\npsum_spad = 4\n")
    t = load_table(f)
    assert (t.name, t.unit, t.word_bits) == ("mine", "fJ", 8)
    # 16-bit data on eyeriss = 2 table words; psums 48 bits = 6; GLB/DRAM words 8
    e = energy(ACC, t, EYE)
    assert e["levels"] == pytest.approx({
        "mac": 10 * 2, "rf": 4 * 2 * 0.5 + 6 * 2 * 0.5 + 2 * 6 * 4,
        "inter_pe": (3 * 2 + 5 * 2 + 1 * 6) * 1, "glb": (2 * 8 + 1 * 6) * 10,
        "dram": 8 * 100})


def test_user_table_in_an_energy_section_defaults(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text("[energy]\nmac = 1\nrf = 1\ninter_pe = 2\nglb = 6\ndram = 200\n")
    t = load_table(f)
    assert (t.name, t.unit, t.word_bits) == ("user", "units", None)
    assert energy(ACC, t, EYE) == energy(ACC, EYERISS, EYE)


@pytest.mark.parametrize("text, message", [
    ("mac = 1\nrf = 1\ninter_pe = 2\nglb = 6\ndram = 200\nsram = 3\n",
     "unknown key 'sram': allowed mac, rf, inter_pe, glb, dram (levels)"),
    ("mac = 1\nrf = -1\ninter_pe = 2\nglb = 6\ndram = 200\n",
     "rf = -1 is out of range: allowed a number >= 0"),
    ("mac = 1\nrf = 1\ninter_pe = 2\nglb = 6\ndram = 200\npsum_spad = -0.5\n",
     "psum_spad = -0.5 is out of range"),
    ("mac = 1\nrf = 1\ninter_pe = 2\nglb = 6\n",
     "missing level 'dram': required mac, rf, inter_pe, glb, dram"),
    ("mac = true\nrf = 1\ninter_pe = 2\nglb = 6\ndram = 200\n", "mac = True is out of range"),
    ("mac = 'x'\nrf = 1\ninter_pe = 2\nglb = 6\ndram = 200\n", "mac = 'x' is out of range"),
    ("mac = nan\nrf = 1\ninter_pe = 2\nglb = 6\ndram = 200\n", "mac = nan is out of range"),
    ("name = 'eyeriss'\nmac = 1\nrf = 1\ninter_pe = 2\nglb = 6\ndram = 200\n",
     "name = 'eyeriss' is invalid"),
    ("word_bits = 0\nmac = 1\nrf = 1\ninter_pe = 2\nglb = 6\ndram = 200\n",
     "word_bits = 0 is out of range: allowed 1..512"),
    ("mac = = 1\n", "invalid TOML"),
])
def test_user_table_errors(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ValueError) as err:
        load_table(f)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(f))


def test_user_table_missing_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read energy table '.*nope.toml'"):
        load_table(tmp_path / "nope.toml")


# ---- from counters to levels ------------------------------------------------------------------

def test_components_from_counters():
    counters = dict(macs=100, gated_macs=40, filter_spad_reads=100, filter_spad_writes=7,
                    ifmap_spad_reads=140, ifmap_spad_writes=30, psum_spad_reads=50,
                    psum_spad_writes=51, glb_reads=20, glb_writes=9, psum_buf_reads=8,
                    psum_buf_writes=12, dram_read_words=5, dram_write_words=3, gin_words=99)
    perf = Perf(**counters)
    mapping = SimpleNamespace(dataflow="rs", vgroups=2, layer=SimpleNamespace(R=3))
    acc = component_accesses(mapping, perf)
    assert acc == {"mac": 100, "ifmap_spad": 170, "filter_spad": 107, "psum_spad": 101,
                   "ifmap_net": 30, "filter_net": 7,
                   "psum_fwd": (2 * 3 - 1) * 12,    # every PE of the 6-high chain but the top
                   "glb": 29, "psum_buf": 20, "dram": 8}


def test_a_dataflow_without_a_psum_rule_is_an_error():
    mapping = SimpleNamespace(dataflow="zz", vgroups=1, layer=SimpleNamespace(R=3))
    with pytest.raises(ValueError, match="dataflow 'zz' has no psum-forwarding rule"):
        psum_forward_words(mapping, Perf())


@pytest.mark.parametrize("params, spec", [
    (TINY, "C=3,M=8,H=16,R=3,pad=1"),
    (TINY, "alexnet-mini.conv1"),
    (TINY, "C=16,M=12,H=9,W=11,R=3,S=2,stride=2,pad=1,N=2,groups=2"),
    (EYE, "alexnet.conv2"),
    (EYE, "alexnet.conv3"),
])
def test_psum_forwarding_equals_the_passes(params, spec):
    """The derived rule against a count over every pass's descriptor: each active PE but the
    top one of its column hands its filters x out_width psums upward."""
    m = map_layer(parse_layer(spec), params)
    brute = sum((d.active_rows - 1) * d.ncols * d.filters * d.out_width
                for _, d in pass_plan(m))
    assert psum_forward_words(m, estimate(m)) == brute
    assert brute > 0


def test_zero_gating_costs_nothing():
    """Zero ifmap values gate MACs, filter reads and psum read-modify-writes (so they cost no
    energy); everything that does not depend on the data costs the same."""
    layer = ConvLayer(name="z", C=4, M=6, H=10, W=10, R=3, S=3, pad=1)
    m = map_layer(layer, TINY)
    rng = np.random.default_rng(1)
    x = rng.integers(1, 5, size=(1, 4, 10, 10))
    dense = component_accesses(m, estimate(m, ifmap=x))
    x[:, :, ::2, :] = 0
    sparse_perf = estimate(m, ifmap=x)
    sparse = component_accesses(m, sparse_perf)
    assert sparse["mac"] == sparse_perf.macs < dense["mac"]
    assert dense["filter_spad"] - sparse["filter_spad"] == dense["mac"] - sparse["mac"]
    assert sparse["psum_spad"] < dense["psum_spad"]
    for name in ("ifmap_spad", "ifmap_net", "filter_net", "psum_fwd", "glb", "psum_buf",
                 "dram"):
        assert sparse[name] == dense[name], name
    e_dense, e_sparse = (energy(a, EYERISS, TINY) for a in (dense, sparse))
    assert e_dense["levels"]["mac"] - e_sparse["levels"]["mac"] == \
        dense["mac"] - sparse["mac"]
    # all zeros: no MAC and no filter read at all
    none = component_accesses(m, estimate(m, ifmap=np.zeros((1, 4, 10, 10), dtype=int)))
    assert none["mac"] == 0 and energy(none, EYERISS, TINY)["levels"]["mac"] == 0
    assert none["filter_spad"] == estimate(m).filter_spad_writes
