"""Making a model's fixed input and output dimensions dynamic, without the ``onnx`` package.

Some exported models declare a fixed input shape (CenterFace: ``[10, 3, 32, 32]``), which
onnxruntime enforces. ``dynamic_dims`` rewrites the declared shapes of the graph's real
inputs (those without an initializer) and of its outputs in the serialized ModelProto: every
dimension but the ones in ``keep`` becomes a named, free dimension. Only the few protobuf
fields on the path ``ModelProto.graph -> GraphProto.input/output -> ValueInfoProto.type ->
TypeProto.tensor_type -> Tensor.shape -> TensorShapeProto.dim`` are decoded; every other
byte (weights, nodes) is copied as is. The device needs no ``onnx`` install and no
conversion step; the rewrite happens in memory at load time.

>>> dim = _varint(_DIM_VALUE << 3) + _varint(10)    # Dimension{dim_value: 10}
>>> _dims_of(_field(_DIM, dim))                      # TensorShapeProto{dim: [dim]}
[10]
"""

from __future__ import annotations

from collections.abc import Iterator

_GRAPH, _INITIALIZER, _INPUT, _OUTPUT = 7, 5, 11, 12
_NAME, _TYPE, _TENSOR, _SHAPE, _DIM = 1, 2, 1, 2, 1
_DIM_VALUE, _DIM_PARAM = 1, 2
_TENSOR_NAME = 8


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated protobuf varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes, bytes | None]]:
    """(field number, wire type, raw bytes of the whole field, payload of a length-delimited
    field or None)."""
    i = 0
    while i < len(buf):
        start = i
        key, i = _read_varint(buf, i)
        number, wire = key >> 3, key & 7
        payload: bytes | None = None
        if wire == 0:
            _, i = _read_varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, j = _read_varint(buf, i)
            i = j + n
            payload = buf[j:i]
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > len(buf):
            raise ValueError("truncated protobuf field")
        yield number, wire, buf[start:i], payload


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _dims_of(shape: bytes) -> list[int | str]:
    dims: list[int | str] = []
    for number, _, _, dim in _fields(shape):
        if number != _DIM or dim is None:
            continue
        value: int | str = ""
        for n, wire, raw, payload in _fields(dim):
            if n == _DIM_VALUE and wire == 0:
                value = _read_varint(raw, 1)[0]
            elif n == _DIM_PARAM and payload is not None:
                value = payload.decode()
        dims.append(value)
    return dims


def _rewrite(value_info: bytes, keep: set[int], prefix: str) -> bytes:
    """A ValueInfoProto with its tensor dims free, except positions in ``keep``."""
    out = b""
    for number, _, raw, payload in _fields(value_info):
        if number != _TYPE or payload is None:
            out += raw
            continue
        type_out = b""
        for n, _, traw, tensor in _fields(payload):
            if n != _TENSOR or tensor is None:
                type_out += traw
                continue
            tensor_out = b""
            for m, _, sraw, shape in _fields(tensor):
                if m != _SHAPE or shape is None:
                    tensor_out += sraw
                    continue
                dims = b""
                for k, value in enumerate(_dims_of(shape)):
                    if k in keep and isinstance(value, int):
                        dim = _varint(_DIM_VALUE << 3) + _varint(value)
                    else:
                        dim = _field(_DIM_PARAM, f"{prefix}{k}".encode())
                    dims += _field(_DIM, dim)
                tensor_out += _field(_SHAPE, dims)
            type_out += _field(_TENSOR, tensor_out)
        out += _field(_TYPE, type_out)
    return out


def _name(message: bytes, field: int = _NAME) -> str:
    """The name of a ValueInfoProto (field 1) or of a TensorProto (``field=_TENSOR_NAME``)."""
    for number, _, _, payload in _fields(message):
        if number == field and payload is not None:
            return payload.decode()
    return ""


def dynamic_dims(model: bytes, keep: tuple[int, ...] = (1,)) -> bytes:
    """The serialized model with free dimensions on its real inputs and its outputs, except
    the dimension positions in ``keep`` (default: the channels of an NCHW image).

    Graph inputs that are initializers (weights listed as inputs by old exporters) are
    dropped from the inputs: onnxruntime then treats them as constants."""
    out: list[bytes] = []
    found = False
    for number, _, raw, graph in _fields(model):
        if number != _GRAPH or graph is None:
            out.append(raw)
            continue
        found = True
        initialized = set()
        for n, _, _, payload in _fields(graph):
            if n == _INITIALIZER and payload is not None:
                initialized.add(_name(payload, _TENSOR_NAME))
        parts: list[bytes] = []
        for n, _, graw, payload in _fields(graph):
            if payload is not None and n == _INPUT and _name(payload) in initialized:
                continue
            if payload is not None and n in (_INPUT, _OUTPUT):
                prefix = f"{'in' if n == _INPUT else 'out'}_{_name(payload)}_"
                parts.append(_field(n, _rewrite(payload, set(keep), prefix)))
            else:
                parts.append(graw)
        out.append(_field(_GRAPH, b"".join(parts)))
    if not found:
        raise ValueError("not an ONNX model (no graph)")
    return b"".join(out)
