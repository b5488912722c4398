#!/usr/bin/env python3
"""Cross-checks SwiftSNN's safetensors files with the reference implementation (safetensors.numpy).

  safetensors_interop.py read FILE   prints {name: {"dtype", "shape", "values"}} as JSON
  safetensors_interop.py write FILE  writes the fixed tensors below

Used by Tests/SNNTensorTests/SafeTensorsInteropTests.swift.
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file, save_file


def fixed_tensors():
    return {
        "weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8 - 1,
        "bias": np.array([0.5, -0.25, 1e-7], dtype=np.float32),
        "double": np.array([[1.0 / 3, -2.5]], dtype=np.float64),
        "labels": np.array([3, 0, 9, 1], dtype=np.int64),
        "counts": np.array([1, 2, 250], dtype=np.uint8),
        "half": np.array([0.5, -2.0, 65504.0], dtype=np.float16),
        "scalar": np.array(7.25, dtype=np.float32),
    }


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "write":
        save_file(fixed_tensors(), path, metadata={"writer": "numpy"})
    elif mode == "read":
        out = {}
        for name, array in load_file(path).items():
            out[name] = {"dtype": str(array.dtype), "shape": list(array.shape),
                         "values": [float(v) for v in array.reshape(-1)]}
        json.dump(out, sys.stdout, sort_keys=True)
    else:
        sys.exit(f"unknown mode {mode!r}: expected read or write")


if __name__ == "__main__":
    main()
