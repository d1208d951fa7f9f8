"""Moving collated batches between devices.

A batch is whatever a dataset's ``collate`` returns: a tensor, a dict of
tensors (audio with lengths, molecules with masks), a tuple, or a library object
that knows how to move itself (a torch-geometric ``Batch``). The trainer and the
evaluators share :func:`move_to` so that every modality reaches the device the
same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import torch


def move_to(obj: Any, device: torch.device | str) -> Any:
    """Return ``obj`` with every tensor in it on ``device``.

    Handles tensors, mappings, lists and tuples (named tuples keep their type),
    nested to any depth, and any other object with a ``.to(device)`` method
    (torch-geometric ``Data``/``Batch``, ``nn.Module``). Anything else (numbers,
    strings, None, numpy arrays) is returned unchanged: a collate function may
    keep metadata beside its tensors, and that metadata has no device.
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, Mapping):
        moved = {key: move_to(value, device) for key, value in obj.items()}
        if isinstance(obj, defaultdict):  # its constructor takes the factory first
            return type(obj)(obj.default_factory, moved)
        mapping_type: Any = type(obj)  # a concrete mapping; `Mapping` itself is abstract
        try:
            return mapping_type(moved)
        except TypeError:  # a read-only or exotic mapping: a plain dict still carries the data
            return moved
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # named tuple: fields are positional
        return type(obj)(*(move_to(item, device) for item in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(item, device) for item in obj)
    # Strings and bytes have no `.to`; checking the attribute, not a base class,
    # lets library batch types move themselves without core importing them.
    to = getattr(obj, "to", None)
    if callable(to):
        return to(device)
    return obj
