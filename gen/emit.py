"""Verilog and manifest generation: the only place (with the other gen/ tools) that writes files.

``emit(params, out_dir)`` writes one Verilog file per generated top (today the PE,
``rowstat_pe.v``) and ``manifest.json``: the parameters, their hash, the derived widths, and
each top's ports with direction and width, so that benches and integrators need not parse
Verilog to find out what they are connecting to.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

import hw
from hw.params import AcceleratorParams
from hw.pe import PE

__all__ = ["emit", "port_list", "TOPS"]

#: Generated tops: file stem -> constructor from parameters.
TOPS = {
    "rowstat_pe": PE.from_params,
}


def port_list(component: wiring.Component) -> list[dict]:
    """Verilog ports of an Amaranth component, in the names Amaranth gives them."""
    ports = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for path, member, _value in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        ports.append({"name": name, "dir": "in" if member.flow == wiring.In else "out",
                      "width": Shape.cast(member.shape).width})
    return ports


def emit(params: AcceleratorParams, out_dir: str | Path) -> dict:
    """Write the Verilog of every top and the manifest into ``out_dir``; returns the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tops = {}
    for stem, make in TOPS.items():
        top = make(params)
        text = verilog.convert(top, name=stem, emit_src=False)
        path = out_dir / f"{stem}.v"
        path.write_text(text)
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
