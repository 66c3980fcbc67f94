"""Reads the protobuf file descriptors compiled into an Envoy binary, to check that the reduced
`.proto` copies in tests/support/proto are the messages Envoy itself puts on the wire.

Envoy links the serialized FileDescriptorProto of every API file it knows (for reflection and
YAML/JSON config). Each starts with field 1 (`name`); from there the wire format is walked field by
field while the tags are those of FileDescriptorProto, and the bytes up to the first tag that is
not are parsed.
"""

from google.protobuf import descriptor_pb2

# FileDescriptorProto field number -> wire type (2: length-delimited, 0: varint).
_FILE_FIELDS = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 2, 8: 2, 9: 2, 10: 0, 11: 0, 12: 2, 13: 2, 14: 0}


def _varint(data, i):
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def _encode_varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def file_descriptor(binary, proto_path):
    """The FileDescriptorProto of `proto_path` (e.g. "envoy/service/ratelimit/v3/rls.proto") found
    in the bytes `binary`, or None."""
    name = proto_path.encode()
    needle = b"\n" + _encode_varint(len(name)) + name
    start = 0
    while True:
        pos = binary.find(needle, start)
        if pos < 0:
            return None
        start = pos + 1
        i = end = pos
        try:
            while i < len(binary):
                tag, j = _varint(binary, i)
                number, wire_type = tag >> 3, tag & 7
                if _FILE_FIELDS.get(number) != wire_type:
                    break
                if wire_type == 0:
                    _, j = _varint(binary, j)
                else:
                    length, j = _varint(binary, j)
                    j += length
                if j > len(binary):
                    break
                i = end = j
        except IndexError:
            pass
        proto = descriptor_pb2.FileDescriptorProto()
        try:
            proto.ParseFromString(binary[pos:end])
        except Exception:  # noqa: BLE001 - not a descriptor after all; keep looking
            continue
        if proto.name == proto_path and proto.package:
            return proto


def messages(file_proto):
    """{full message name: DescriptorProto} for a file, nested messages included."""
    out = {}

    def walk(message, prefix):
        full = prefix + "." + message.name
        out[full] = message
        for nested in message.nested_type:
            walk(nested, full)

    for message in file_proto.message_type:
        walk(message, file_proto.package)
    return out


def enums(file_proto):
    """{full enum name: {value name: number}} for a file, nested enums included."""
    out = {}

    def add(enum, prefix):
        out[prefix + "." + enum.name] = {v.name: v.number for v in enum.value}

    for enum in file_proto.enum_type:
        add(enum, file_proto.package)
    for full, message in messages(file_proto).items():
        for enum in message.enum_type:
            add(enum, full)
    return out


def fields(message):
    """A message's fields as comparable tuples."""
    return sorted((f.name, f.number, f.type, f.label, f.type_name) for f in message.field)
