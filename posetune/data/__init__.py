"""Data layer: one record type, one KeypointSpec, readers/writers for every label format."""

from posetune.data.records import ImageRecord, Instance, KeypointDataset, Problem
from posetune.data.spec import KeypointSpec, get_spec, infer_flip_pairs, list_specs

__all__ = [
    "ImageRecord",
    "Instance",
    "KeypointDataset",
    "KeypointSpec",
    "Problem",
    "get_spec",
    "infer_flip_pairs",
    "list_specs",
]
