"""Tests of selfsup.batching.move_to.

The CPU has one real device, so movement is checked with torch's "meta" device:
a tensor moved there changes its ``device`` without any data being copied.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from types import MappingProxyType
from typing import Any, NamedTuple

import torch

from selfsup.batching import move_to

META = torch.device("meta")


def test_tensor_moves() -> None:
    assert move_to(torch.zeros(3), "meta").device == META


def test_nested_containers_move_and_keep_their_types() -> None:
    batch: dict[str, Any] = {
        "x": torch.zeros(2, 3),
        "parts": [torch.ones(2), (torch.arange(3), "label")],
        "ordered": OrderedDict(a=torch.zeros(1)),
    }
    moved = move_to(batch, META)
    assert type(moved) is dict
    assert moved["x"].device == META
    assert isinstance(moved["parts"], list)
    assert moved["parts"][0].device == META
    assert isinstance(moved["parts"][1], tuple)
    assert moved["parts"][1][0].device == META
    assert moved["parts"][1][1] == "label"  # metadata passes through unchanged
    assert isinstance(moved["ordered"], OrderedDict)
    assert moved["ordered"]["a"].device == META
    # the input is not modified in place
    assert batch["x"].device.type == "cpu"


class Pair(NamedTuple):
    signal: torch.Tensor
    length: int


def test_named_tuple_keeps_its_type_and_fields() -> None:
    moved = move_to(Pair(torch.zeros(4), 4), META)
    assert isinstance(moved, Pair)
    assert moved.signal.device == META
    assert moved.length == 4


def test_defaultdict_keeps_its_factory_and_readonly_mappings_become_dicts() -> None:
    dd: defaultdict[str, Any] = defaultdict(list, x=torch.zeros(1))
    moved = move_to(dd, META)
    assert isinstance(moved, defaultdict) and moved.default_factory is list
    assert moved["x"].device == META
    proxy = move_to(MappingProxyType({"x": torch.zeros(1)}), META)
    assert proxy["x"].device == META


class GraphLike:
    """Stands in for a torch-geometric Batch: moves itself with `.to(device)`."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def to(self, device: torch.device | str) -> GraphLike:
        return GraphLike(self.x.to(device))


def test_objects_with_a_to_method_move_themselves() -> None:
    moved = move_to([GraphLike(torch.zeros(2))], META)
    assert isinstance(moved[0], GraphLike)
    assert moved[0].x.device == META


def test_module_moves() -> None:
    module = move_to(torch.nn.Linear(2, 2), META)
    assert module.weight.device == META


def test_leaves_without_a_device_are_returned_unchanged() -> None:
    marker = object()
    for leaf in (None, 3, 2.5, "text", b"bytes", marker):
        assert move_to(leaf, META) is leaf
