"""Graph rewrites for ONNX artifacts: short tensor names.

On a small model the names of tensors and Q/DQ nodes (``/layer1/layer1.0/conv1/Conv_output_0_QuantizeLinear``)
weigh as much as the INT8 weights themselves. Renaming every internal value to a short
id changes no computation; graph inputs and outputs keep their names.
"""

from __future__ import annotations

import onnx


def compact_names(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    mapping: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        if name not in mapping:
            mapping[name] = format(len(mapping), "x")
        return mapping[name]

    for init in g.initializer:
        init.name = short(init.name)
    for i, node in enumerate(g.node):
        node.name = f"n{i:x}"
        node.doc_string = ""
        del node.metadata_props[:]
        for j, n in enumerate(node.input):
            node.input[j] = short(n)
        for j, n in enumerate(node.output):
            node.output[j] = short(n)
    del g.value_info[:]  # shape hints only; runtimes infer them again
    g.doc_string = ""
    return model
