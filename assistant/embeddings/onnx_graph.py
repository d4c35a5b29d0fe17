"""Reading an ONNX graph for the MiniLM rewrite (`onnx_optimize`): an index by name, pattern matchers, edits.

Each matcher recognises one subgraph the exporter wrote (attention, GELU, a dequantized weight, a
NaN guard) and returns None for anything else, so the rewrite leaves an unknown graph as it was.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Graph:
    """Index of one ONNX graph: producers, consumers and constant initializers by name."""

    def __init__(self, graph: Any) -> None:
        from onnx import numpy_helper

        self.graph = graph
        self.consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[Any]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def dequantized(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Return (int8 weight, scale) if `name` is the exporter's Mul(Cast(int8 const), scale)."""
        mul = self.producer.get(name)
        if mul is None or mul.op_type != "Mul":
            return None
        cast = self.producer.get(mul.input[0])
        scale = self.consts.get(mul.input[1])
        if cast is None or cast.op_type != "Cast" or scale is None:
            return None
        weight = self.consts.get(cast.input[0])
        if weight is None or weight.dtype != np.int8:
            return None
        return weight, scale


def up_to(index: Graph, name: str, ops: tuple[str, ...]) -> tuple[str, float] | None:
    # Follow first inputs through reshapes/transposes/scalings to a projection; multiply the scalings.
    scale = 1.0
    node = index.producer.get(name)
    while node is not None and node.op_type in ops:
        if node.op_type == "Mul":
            const = index.consts.get(node.input[1])
            if const is None or const.size != 1:
                return None
            scale *= float(const.reshape(-1)[0])
        node = index.producer.get(node.input[0])
    if node is None or node.op_type != "DynamicQuantizeMatMul":
        return None
    return node.output[0], scale


def attention(index: Graph, softmax: Any) -> tuple[tuple[str, str, str, str], float] | None:
    scores = index.producer.get(softmax.input[0])
    qk = index.producer.get(scores.input[0]) if scores is not None and scores.op_type == "Add" else None
    users = index.consumers.get(softmax.output[0], [])
    if qk is None or qk.op_type != "MatMul" or len(users) != 1 or users[0].op_type != "MatMul":
        return None
    av = users[0]
    moves = ("Reshape", "Transpose", "Mul")
    query, key, value = (up_to(index, n, moves) for n in (qk.input[0], qk.input[1], av.input[1]))
    after = index.consumers.get(av.output[0], [])
    out = index.consumers.get(after[0].output[0], []) if len(after) == 1 else []
    if (
        None in (query, key, value)
        or len(out) != 1
        or (after[0].op_type, out[0].op_type)
        != (
            "Transpose",
            "Reshape",
        )
    ):
        return None
    assert query is not None and key is not None and value is not None
    return (query[0], key[0], value[0], out[0].output[0]), query[1] * key[1]


def heads(index: Graph, projection: str) -> int:
    # The query projection is reshaped to (batch, length, -1, head size): heads = width / head size.
    for user in index.consumers.get(projection, []):
        shape = index.producer.get(user.input[1]) if user.op_type == "Reshape" else None
        if shape is not None and shape.op_type == "Concat":
            size = index.consts.get(shape.input[-1])
            node = index.producer[projection]
            width = index.consts[node.input[2]].size
            if size is not None and size.size == 1:
                return int(width // int(size.reshape(-1)[0]))
    raise ValueError(f"cannot tell the number of attention heads at {projection}")


def toposort(graph: Any) -> None:
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError("the rewritten graph has a cycle or a missing input")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def quantizable(weight: np.ndarray, scale: np.ndarray) -> bool:
    # Symmetric int8 with one scale per output column: what DynamicQuantizeMatMul takes as is.
    return weight.ndim == 2 and scale.size == weight.shape[1]


def bias_of(index: Graph, matmul: Any) -> Any:
    users = index.consumers.get(matmul.output[0], [])
    if len(users) != 1 or users[0].op_type != "Add":
        return None
    add = users[0]
    bias = index.consts.get(add.input[1]) if add.input[0] == matmul.output[0] else None
    return add if bias is not None and bias.ndim == 1 else None


def const_is(index: Graph, name: str, value: float) -> bool:
    const = index.consts.get(name)
    return const is not None and const.size == 1 and abs(float(const.reshape(-1)[0]) - value) < 1e-4


def gelu_input(index: Graph, mul: Any) -> str | None:
    """Return x if `mul` is the last node of x * (0.5 * (1 + erf(x / sqrt(2)))), else None."""
    for x, half in (mul.input, reversed(mul.input)):
        scaled = index.producer.get(half)
        if scaled is None or scaled.op_type != "Mul" or not const_is(index, scaled.input[0], 0.5):
            continue
        plus = index.producer.get(scaled.input[1])
        if plus is None or plus.op_type != "Add" or not const_is(index, plus.input[1], 1.0):
            continue
        erf = index.producer.get(plus.input[0])
        div = index.producer.get(erf.input[0]) if erf is not None and erf.op_type == "Erf" else None
        if (
            div is not None
            and div.op_type == "Div"
            and div.input[0] == x
            and const_is(index, div.input[1], 2**0.5)
        ):
            return str(x)
    return None


def is_nan_guard(index: Graph, where: Any) -> bool:
    check = index.producer.get(where.input[0])
    return (
        check is not None
        and check.op_type == "IsNaN"
        and check.input[0] == where.input[2]
        and index.producer.get(where.input[2]) is not None
        and index.producer[where.input[2]].op_type == "Softmax"
    )


def rename_input(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def fold_constants(model: Any) -> None:
    # The remaining Cast+Mul pairs (embedding tables) become plain fp32 tables, once, here.
    from onnx import numpy_helper

    index = Graph(model.graph)
    folded: list[Any] = []
    for node in model.graph.node:
        found = index.dequantized(node.output[0]) if node.op_type == "Mul" else None
        if found is not None:
            weight, scale = found
            folded.append(numpy_helper.from_array((weight.astype(np.float32) * scale), node.output[0]))
    names = {t.name for t in folded}
    keep = [n for n in model.graph.node if not (n.op_type == "Mul" and n.output[0] in names)]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    model.graph.initializer.extend(folded)


def prune(model: Any) -> None:
    # Drop nodes whose outputs nobody reads, then initializers nobody reads.
    graph = model.graph
    outputs = {o.name for o in graph.output}
    while True:
        used = outputs | {name for node in graph.node for name in node.input}
        keep = [n for n in graph.node if any(o in used for o in n.output)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    used = {name for node in graph.node for name in node.input}
    inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
