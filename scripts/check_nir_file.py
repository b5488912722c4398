#!/usr/bin/env python3
"""Reads a NIR file with the official reader and prints what it holds, as one JSON object.

    python3 scripts/check_nir_file.py NET.nir

`nir.read` runs with type checking on: it infers every node's input and output shape from the
Input node forward and fails when an edge joins mismatched shapes. The output lists the NIR
version, each node's type and inferred input/output shapes (without batch or time), the edges
and the metadata keys. Exit status 1 (with the reader's message on stderr) when the file does
not read. Needs `pip install nir` (NumPy and h5py).
"""
import json
import sys


def shape(types):
    if not types:
        return None
    value = next(iter(types.values()))
    return None if value is None else [int(v) for v in value]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    import h5py
    import nir

    try:
        graph = nir.read(sys.argv[1], type_check=True)
        with h5py.File(sys.argv[1], "r") as f:
            version = f["version"][()].decode("utf8")
    except Exception as error:  # the reader's own message is the point
        print(f"{sys.argv[1]}: nir.read failed: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    nodes = {
        name: {"type": type(node).__name__, "input": shape(node.input_type), "output": shape(node.output_type)}
        for name, node in graph.nodes.items()
    }
    print(json.dumps({
        "version": version,
        "nodes": nodes,
        "edges": [[a, b] for a, b in graph.edges],
        "metadata": sorted(graph.metadata.keys()),
    }, sort_keys=True))


if __name__ == "__main__":
    main()
