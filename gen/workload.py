"""Convolution layers: the workloads rowstat maps onto an accelerator.

A :class:`ConvLayer` is one CONV layer in NCHW x MCRS form, validated on construction so that
no layer with an empty output or an impossible grouping reaches the mapper. Layers come from a
compact text spec (``"C=3,M=8,H=16,R=3,pad=1"``) or by name (``"alexnet.conv3"``), see
:func:`parse_layer`; :data:`LAYERS` and :data:`NETWORKS` hold the named ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hw.pe import MAX_STRIDE

__all__ = ["ConvLayer", "parse_layer", "LAYERS", "NETWORKS"]


def _check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer ({allowed}), not {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} = {value} is out of range: allowed {allowed}")
    return value


@dataclass(frozen=True, kw_only=True)
class ConvLayer:
    """One convolution layer: N ifmaps of C x H x W, M filters of C/groups x R x S.

    ``pad`` zeros surround the ifmap on all four sides; output channel m reads the input
    channels of group ``m // (M/groups)``. The result is requantized with ``shift`` (None: the
    automatic :meth:`auto_shift` for the accelerator's data width) and optionally ReLU'd.
    """
    name: str = "layer"
    N: int = 1
    C: int
    M: int
    H: int
    W: int
    R: int
    S: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    relu: bool = False
    shift: int | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, not {self.name!r}")
        for f in ("N", "C", "M", "H", "W", "R", "S", "groups"):
            _check_int(f, getattr(self, f), 1)
        _check_int("stride", self.stride, 1, MAX_STRIDE)
        _check_int("pad", self.pad, 0)
        if not isinstance(self.relu, bool):
            raise ValueError(f"relu must be True or False, not {self.relu!r}")
        if self.shift is not None:
            _check_int("shift", self.shift, 0, 62)
        for f in ("C", "M"):
            if getattr(self, f) % self.groups:
                raise ValueError(f"groups = {self.groups} does not divide {f} = "
                                 f"{getattr(self, f)}: allowed a common divisor of C = {self.C} "
                                 f"and M = {self.M}")
        for out, size, k in (("E", "H", "R"), ("F", "W", "S")):
            n_in, n_k = getattr(self, size), getattr(self, k)
            if n_k > n_in + 2 * self.pad:
                raise ValueError(
                    f"layer {self._shape_text()} has an empty output: {out} = 0 "
                    f"({k} = {n_k} > {size} + 2*pad = {n_in + 2 * self.pad})")

    def _shape_text(self) -> str:
        text = f"C={self.C},M={self.M},H={self.H},W={self.W},R={self.R},S={self.S}"
        if self.stride != 1:
            text += f",stride={self.stride}"
        if self.pad:
            text += f",pad={self.pad}"
        return text

    # -- derived -------------------------------------------------------------------------------

    @property
    def E(self) -> int:
        """Ofmap height."""
        return (self.H + 2 * self.pad - self.R) // self.stride + 1

    @property
    def F(self) -> int:
        """Ofmap width."""
        return (self.W + 2 * self.pad - self.S) // self.stride + 1

    @property
    def Cg(self) -> int:
        """Input channels per group (channels each filter reads)."""
        return self.C // self.groups

    @property
    def Mg(self) -> int:
        """Filters per group."""
        return self.M // self.groups

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the layer (padding included, as every tool counts them)."""
        return self.N * self.M * self.E * self.F * self.Cg * self.R * self.S

    @property
    def padded_width(self) -> int:
        return self.W + 2 * self.pad

    @property
    def terms(self) -> int:
        """Products summed into one output: C/groups x R x S."""
        return self.Cg * self.R * self.S

    def auto_shift(self, data_width: int) -> int:
        """Default requantization shift: the product scale (data_width - 1) plus half the
        growth of a sum of ``terms`` random-sign products (ceil(log2(terms) / 2))."""
        half_growth = ((self.terms - 1).bit_length() + 1) // 2  # smallest t: 4**t >= terms
        return (data_width - 1) + half_growth

    def shift_for(self, data_width: int) -> int:
        """The shift the layer is requantized with on an accelerator of this data width."""
        return self.auto_shift(data_width) if self.shift is None else self.shift

    def spec(self) -> str:
        """Canonical text form; :func:`parse_layer` reads it back to an equal layer."""
        text = (f"C={self.C},M={self.M},H={self.H},W={self.W},R={self.R},S={self.S},"
                f"stride={self.stride},pad={self.pad}")
        if self.N != 1:
            text += f",N={self.N}"
        if self.groups != 1:
            text += f",groups={self.groups}"
        if self.relu:
            text += ",relu=1"
        if self.shift is not None:
            text += f",shift={self.shift}"
        return text

    def replace(self, **changes) -> "ConvLayer":
        return dataclasses.replace(self, **changes)

    def __str__(self) -> str:
        return f"{self.name} ({self.spec()})"


# ---- parsing ------------------------------------------------------------------------------

_SPEC_KEYS = ("N", "C", "M", "H", "W", "R", "S", "stride", "pad", "groups", "relu", "shift")
_REQUIRED = ("C", "M", "H", "R")


def _parse_pairs(text: str, source: str) -> dict:
    values: dict = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key:
            raise ValueError(f"{source}: {item!r} is not KEY=VALUE: allowed keys "
                             f"{', '.join(_SPEC_KEYS)}")
        if key not in _SPEC_KEYS:
            raise ValueError(f"{source}: unknown key {key!r}: allowed keys "
                             f"{', '.join(_SPEC_KEYS)}")
        if key in values:
            raise ValueError(f"{source}: key {key!r} given twice")
        if key == "relu":
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                values[key] = True
            elif low in ("0", "false", "no", "off"):
                values[key] = False
            else:
                raise ValueError(f"{source}: relu = {value!r} is invalid: allowed 0 or 1")
            continue
        try:
            values[key] = int(value)
        except ValueError:
            raise ValueError(f"{source}: {key} = {value!r} is not an integer") from None
    return values


def parse_layer(text: str) -> ConvLayer:
    """A layer from a spec or a name.

    * spec: ``"C=3,M=8,H=16,W=16,R=3,S=3,stride=1,pad=1[,N=2][,relu=1][,shift=6][,groups=2]"``;
      C, M, H and R are required, W defaults to H and S to R.
    * name: ``NETWORK.LAYER`` from :data:`LAYERS` (e.g. ``alexnet.conv3``), optionally followed
      by overrides: ``"alexnet.conv1,N=4"``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"layer spec must be a non-empty string, not {text!r}")
    text = text.strip()
    head, _, rest = text.partition(",")
    head = head.strip()
    if "=" not in head:  # a named layer
        if head not in LAYERS:
            net, dot, _ = head.partition(".")
            if dot and net in NETWORKS:
                names = ", ".join(layer.name for layer in NETWORKS[net])
                raise ValueError(f"unknown layer {head!r}: {net} has {names}")
            raise ValueError(f"unknown layer {head!r}: allowed a spec such as "
                             f"'C=3,M=8,H=16,R=3,pad=1' or NETWORK.LAYER with NETWORK one of "
                             f"{', '.join(NETWORKS)}")
        overrides = _parse_pairs(rest, head)
        return LAYERS[head].replace(**overrides) if overrides else LAYERS[head]
    values = _parse_pairs(text, "layer spec")
    missing = [k for k in _REQUIRED if k not in values]
    if missing:
        raise ValueError(f"layer spec {text!r} lacks {', '.join(missing)}: required "
                         f"{', '.join(_REQUIRED)} (W defaults to H, S to R)")
    values.setdefault("W", values["H"])
    values.setdefault("S", values["R"])
    return ConvLayer(name="custom", **values)


# ---- named networks -----------------------------------------------------------------------

def _net(prefix: str, rows: list[tuple]) -> tuple[ConvLayer, ...]:
    """Layers from rows (name, C, M, H, R, stride, pad, groups[, relu]) with square shapes."""
    layers = []
    for row in rows:
        name, C, M, H, R, stride, pad, groups, *relu = row
        layers.append(ConvLayer(name=f"{prefix}.{name}", C=C, M=M, H=H, W=H, R=R, S=R,
                                stride=stride, pad=pad, groups=groups,
                                relu=relu[0] if relu else True))
    return tuple(layers)


def _separable(blocks: list[tuple[int, int, int, int]]) -> list[tuple]:
    """Rows of depthwise-separable blocks (C in, M out, H in, stride of the depthwise 3x3):
    ``dwK`` (C -> C, groups = C) then ``pwK`` (1x1, C -> M) on the depthwise output."""
    rows = []
    for k, (C, M, H, stride) in enumerate(blocks, start=1):
        rows.append((f"dw{k}", C, C, H, 3, stride, 1, C))
        rows.append((f"pw{k}", C, M, (H + 2 - 3) // stride + 1, 1, 1, 0, 1))
    return rows


NETWORKS: dict[str, tuple[ConvLayer, ...]] = {
    # LeNet-5 (LeCun et al. 1998) end to end on a 32x32 input. Its subsampling layers S2 and
    # S4 (a trainable coefficient times each 2x2 sum) are depthwise 2x2 convolutions with
    # stride 2 (groups = channels); C3 is fully connected to S2 here (no connection table);
    # F6 and the output layer are 1x1 convolutions of a 1x1 map. ReLU after every layer but
    # the last.
    "lenet5": _net("lenet5", [
        ("conv1", 1, 6, 32, 5, 1, 0, 1),
        ("pool1", 6, 6, 28, 2, 2, 0, 6),
        ("conv2", 6, 16, 14, 5, 1, 0, 1),
        ("pool2", 16, 16, 10, 2, 2, 0, 16),
        ("conv3", 16, 120, 5, 5, 1, 0, 1),
        ("fc1", 120, 84, 1, 1, 1, 0, 1),
        ("fc2", 84, 10, 1, 1, 1, 0, 1, False),
    ]),
    # The common two-group form (REFERENCE.md): 665.8 M MACs for CONV1-5.
    "alexnet": _net("alexnet", [
        ("conv1", 3, 96, 227, 11, 4, 0, 1),
        ("conv2", 96, 256, 27, 5, 1, 2, 2),
        ("conv3", 256, 384, 13, 3, 1, 1, 1),
        ("conv4", 384, 384, 13, 3, 1, 1, 2),
        ("conv5", 384, 256, 13, 3, 1, 1, 2),
    ]),
    # AlexNet's CONV sequence scaled down to simulate in seconds on the tiny preset (6 x 4
    # PEs, 24-bit psums): a large strided first filter (5x5/4 instead of 11x11/4, since the
    # tiny array has 6 rows), then 5x5 and three 3x3 layers with the same grouping. Without
    # pooling the layers chain: each output (C x 7 x 7) is the next layer's input.
    "alexnet-mini": _net("alexnet-mini", [
        ("conv1", 3, 8, 29, 5, 4, 0, 1),
        ("conv2", 8, 16, 7, 5, 1, 2, 2),
        ("conv3", 16, 24, 7, 3, 1, 1, 1),
        ("conv4", 24, 24, 7, 3, 1, 1, 2),
        ("conv5", 24, 16, 7, 3, 1, 1, 2),
    ]),
    "vgg16": _net("vgg16", [
        ("conv1_1", 3, 64, 224, 3, 1, 1, 1),
        ("conv1_2", 64, 64, 224, 3, 1, 1, 1),
        ("conv2_1", 64, 128, 112, 3, 1, 1, 1),
        ("conv2_2", 128, 128, 112, 3, 1, 1, 1),
        ("conv3_1", 128, 256, 56, 3, 1, 1, 1),
        ("conv3_2", 256, 256, 56, 3, 1, 1, 1),
        ("conv3_3", 256, 256, 56, 3, 1, 1, 1),
        ("conv4_1", 256, 512, 28, 3, 1, 1, 1),
        ("conv4_2", 512, 512, 28, 3, 1, 1, 1),
        ("conv4_3", 512, 512, 28, 3, 1, 1, 1),
        ("conv5_1", 512, 512, 14, 3, 1, 1, 1),
        ("conv5_2", 512, 512, 14, 3, 1, 1, 1),
        ("conv5_3", 512, 512, 14, 3, 1, 1, 1),
    ]),
    # A representative handful of ResNet-50's convolutions (the stem, a bottleneck's 1x1 and
    # 3x3, a strided projection shortcut, and 3x3s deeper down).
    "resnet50": _net("resnet50", [
        ("conv1", 3, 64, 224, 7, 2, 3, 1),
        ("res2a_branch2a", 64, 64, 56, 1, 1, 0, 1),
        ("res2a_branch2b", 64, 64, 56, 3, 1, 1, 1),
        ("res3a_branch1", 256, 512, 56, 1, 2, 0, 1, False),
        ("res4a_branch2b", 256, 256, 14, 3, 1, 1, 1),
        ("res5a_branch2b", 512, 512, 7, 3, 1, 1, 1),
    ]),
    # MobileNet v1 1.0 at 224 x 224 (Howard et al. 2017, Table 1): a full 3x3 convolution,
    # then 13 depthwise-separable blocks -- a depthwise 3x3 (groups = C: one filter per
    # channel) and a pointwise 1x1 -- and the 1024 -> 1000 classifier as a 1x1 convolution on
    # the 1x1 map the global average pool leaves (the pool itself is not a convolution and is
    # left out). "Same" padding is pad = 1 for every 3x3. 568.7 M MACs in all (the paper's
    # 569 M).
    "mobilenet_v1": _net("mobilenet_v1", [
        ("conv1", 3, 32, 224, 3, 2, 1, 1),
        *_separable([(32, 64, 112, 1), (64, 128, 112, 2), (128, 128, 56, 1),
                     (128, 256, 56, 2), (256, 256, 28, 1), (256, 512, 28, 2),
                     *[(512, 512, 14, 1)] * 5, (512, 1024, 14, 2), (1024, 1024, 7, 1)]),
        ("fc", 1024, 1000, 1, 1, 1, 0, 1, False),
    ]),
}

LAYERS: dict[str, ConvLayer] = {layer.name: layer for net in NETWORKS.values() for layer in net}
