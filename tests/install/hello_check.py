#!/usr/bin/python3
"""The installed interaction.proto, used by another protobuf implementation.

    hello_check.py PYTHON_OUT CONSUMER

PYTHON_OUT holds interaction_pb2.py, which `protoc --python_out` made from the
INSTALLED proto (share/interaction/proto/interaction.proto). This script
listens on 127.0.0.1 port 0, runs `CONSUMER --hello PORT` (a libinteraction
master built against the installed package), reads the first frame it sends
and decodes it with Python's protobuf: it must be a Hello of version 1 on
channel 42 from "consumer-master", and Python must encode that Frame to the
very bytes libinteraction sent. Then it hangs up. Every wait is bounded.
Run it with Debian's /usr/bin/python3 (python3-protobuf).
"""
import socket
import struct
import subprocess
import sys

WAIT_S = 10
MAX_FRAME = 64 << 10  # a Hello is tiny; more is a broken length prefix


def fail(why):
    print(f"hello_check: FAIL: {why}")
    sys.exit(1)


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            fail(f"the master hung up after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_hello(consumer):
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(WAIT_S)
        port = server.getsockname()[1]
        app = subprocess.Popen([consumer, "--hello", str(port)])
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(WAIT_S)
                (length,) = struct.unpack(">I", recv_exact(conn, 4))
                if length > MAX_FRAME:
                    fail(f"a first frame of {length} bytes")
                raw = recv_exact(conn, length)
            if app.wait(timeout=WAIT_S) != 0:
                fail(f"{consumer} --hello exited with {app.returncode}")
        finally:
            if app.poll() is None:
                app.kill()
                app.wait()
    return raw


def main():
    if len(sys.argv) != 3:
        print("usage: hello_check.py PYTHON_OUT CONSUMER", file=sys.stderr)
        sys.exit(2)
    sys.path.insert(0, sys.argv[1])
    import interaction_pb2  # pylint: disable=import-outside-toplevel

    raw = read_hello(sys.argv[2])
    frame = interaction_pb2.Frame()
    frame.ParseFromString(raw)
    if frame.WhichOneof("body") != "hello":
        fail(f"the first frame is a {frame.WhichOneof('body')}, not a Hello")
    hello = frame.hello
    if (hello.version, hello.channel, hello.master_name) != (1, 42, "consumer-master"):
        fail(f"Hello version {hello.version}, channel {hello.channel}, master_name {hello.master_name!r}")
    again = frame.SerializeToString()
    if again != raw:
        fail(f"libinteraction sent {raw.hex()}, Python encodes the same Frame as {again.hex()}")
    print(f"hello_check: OK: a {len(raw)}-byte Hello, the same bytes from libinteraction and Python's protobuf")


main()
