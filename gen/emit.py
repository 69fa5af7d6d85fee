"""Verilog and manifest generation: the only place (with the other gen/ tools) that writes files.

``emit(params, out_dir)`` writes one Verilog file per generated top (today the PE,
``rowstat_pe.v``) and ``manifest.json``: the parameters, their hash, the derived widths, and
each top's ports with direction and width, so that benches and integrators need not parse
Verilog to find out what they are connecting to.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

import hw
from hw.params import AcceleratorParams
from hw.pe import PE
from hw.top import Accelerator

__all__ = ["emit", "port_list", "TOPS", "design_hash", "cached_verilog"]

#: Generated tops: file stem -> constructor from parameters.
TOPS = {
    "rowstat_top": Accelerator,
    "rowstat_pe": PE.from_params,
}


def design_hash(params: AcceleratorParams) -> str:
    """Hash of the parameters and of the generator's hardware sources: two equal hashes mean
    the same Verilog, so simulator builds can be cached under it."""
    h = hashlib.sha256(params.hardware_hash.encode())
    for src in [*sorted(Path(hw.__file__).parent.glob("*.py")), Path(__file__)]:
        h.update(src.name.encode())
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def cached_verilog(params: AcceleratorParams, top: str, cache_root: str | Path) -> Path:
    """``<cache_root>/<design hash>/<top>.v``, generated only when not there yet."""
    out_dir = Path(cache_root) / f"{params.name}-{design_hash(params)}"
    path = out_dir / f"{top}.v"
    if not path.exists():
        emit(params, out_dir, tops=[top])
    return path


def port_list(component: wiring.Component) -> list[dict]:
    """Verilog ports of an Amaranth component, in the names Amaranth gives them."""
    ports = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for path, member, _value in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        ports.append({"name": name, "dir": "in" if member.flow == wiring.In else "out",
                      "width": Shape.cast(member.shape).width})
    return ports


_MODULE = re.compile(r"\(\* generator = \"Amaranth\" \*\)\nmodule (\S+) \(.*?\nendmodule\n",
                     re.DOTALL)
_TRIGGER_ID = re.compile(r"dump_module\$\d+")


def dedupe_modules(text: str) -> str:
    """Merge the Verilog modules that are identical but for their names.

    Amaranth writes one module per instance, so an array of 168 equal PEs becomes 168 copies
    of the PE's Verilog -- 11 MB for the eyeriss preset, which Verilator then compiles for a
    quarter of an hour. Equal copies (leaves first, repeated until nothing changes) are
    replaced by the first one and their instances renamed; the hardware is unchanged.
    """
    while True:
        blocks = {m.group(1): m.group(0) for m in _MODULE.finditer(text)}
        first, rename = {}, {}
        for name, block in blocks.items():
            key = _TRIGGER_ID.sub("", block.replace(name + " ", "\x00 ", 1))
            if key in first:
                rename[name] = first[key]
            else:
                first[key] = name
        if not rename:
            return text
        for name in rename:
            text = text.replace(blocks[name], "")
        pattern = re.compile("|".join(re.escape(n + " ") for n in rename))
        text = pattern.sub(lambda m: rename[m.group(0)[:-1]] + " ", text)


def emit(params: AcceleratorParams, out_dir: str | Path, *, tops=None) -> dict:
    """Write the Verilog of every top (or of ``tops``) and the manifest into ``out_dir``;
    returns the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = list(TOPS) if tops is None else list(tops)
    unknown = [t for t in wanted if t not in TOPS]
    if unknown:
        raise ValueError(f"unknown top {unknown[0]!r}: allowed {', '.join(TOPS)}")
    tops = {}
    for stem in wanted:
        top = TOPS[stem](params)
        text = dedupe_modules(verilog.convert(top, name=stem, emit_src=False))
        path = out_dir / f"{stem}.v"
        tmp = path.with_suffix(".v.tmp")
        tmp.write_text(text)
        tmp.replace(path)       # atomic: a concurrent reader never sees half a file
        tops[stem] = {"file": path.name, "ports": port_list(top)}
    manifest = {
        "generator": "rowstat",
        "version": _version(),
        "generated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "parameters": params.to_dict(),
        "hardware_hash": params.hardware_hash,
        "derived": {
            "num_pes": params.num_pes,
            "product_width": params.product_width,
            "rlc_level_bits": params.rlc_level_bits,
            "rlc_pairs_per_word": params.rlc_pairs_per_word,
            "glb_bank_words": params.glb_bank_words,
        },
        "tops": tops,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("rowstat")
    except PackageNotFoundError:
        return getattr(hw, "__version__", "unknown")
