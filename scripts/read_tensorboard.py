#!/usr/bin/env python3
"""Prints the scalars of a TensorBoard log folder as JSON ({tag: [[step, value], ...]}), read with
TensorBoard's own EventAccumulator. Used by the tests to check that TensorBoard opens our files."""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

accumulator = EventAccumulator(sys.argv[1])
accumulator.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}))
