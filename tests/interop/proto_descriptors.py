"""Prints the reference descriptors of protobuf messages and enums, as the `onnx` and
`tensorflow` packages publish them, for tests/proto_schemas.rs to compare warez-pipe's own
schemas (proto/*.proto) with.

Usage: proto_descriptors.py NAME...   where NAME is `message:FULL.NAME` or `enum:FULL.NAME`

Prints one JSON object: {"messages": {name: fields or null}, "enums": {name: values or null}},
null where the reference has no such message or enum. A message's fields are
{field name: {"number", "type", "label", "type_name", "oneof"}} with the type and label as
`descriptor.proto` names them (TYPE_INT64, LABEL_REPEATED) and the type name fully qualified
with a leading dot, as in a FileDescriptorSet; an enum's values are {value name: number}.
"""

import json
import sys

from google.protobuf import descriptor_pb2, descriptor_pool

# Importing the generated modules registers their files, and what they import, in the default
# pool: ONNX's onnx-ml.proto, and TensorFlow's framework and SavedModel protos.
import onnx.onnx_ml_pb2  # noqa: F401
from tensorflow.core.framework import graph_pb2  # noqa: F401
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2, tensor_bundle_pb2  # noqa: F401

FieldProto = descriptor_pb2.FieldDescriptorProto


def message_fields(pool, name):
    try:
        descriptor = pool.FindMessageTypeByName(name)
    except KeyError:
        return None
    message = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(message)
    fields = {}
    for field in message.field:
        in_oneof = field.HasField("oneof_index") and not field.proto3_optional
        fields[field.name] = {
            "number": field.number,
            "type": FieldProto.Type.Name(field.type),
            "label": FieldProto.Label.Name(field.label),
            "type_name": field.type_name,
            "oneof": message.oneof_decl[field.oneof_index].name if in_oneof else None,
        }
    return fields


def enum_values(pool, name):
    try:
        descriptor = pool.FindEnumTypeByName(name)
    except KeyError:
        return None
    return {value.name: value.number for value in descriptor.values}


def main(names):
    pool = descriptor_pool.Default()
    result = {"messages": {}, "enums": {}}
    for argument in names:
        kind, _, name = argument.partition(":")
        if kind == "message":
            result["messages"][name] = message_fields(pool, name)
        elif kind == "enum":
            result["enums"][name] = enum_values(pool, name)
        else:
            sys.exit(f"proto_descriptors.py: `{argument}` is not message:NAME or enum:NAME")
    print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1:])
