#!/usr/bin/env python3
"""Asks a TLS port whether it lets a peer in.

    tls_probe.py ADDR plaintext
    tls_probe.py ADDR tls CA [CERT KEY]

Prints `accepted: ...` or `refused: ...` and exits 0 either way (2 on bad
usage). plaintext: sends bytes that are not a TLS record and reads the
answer; a TLS server answers with an alert (or closes). tls: a handshake
trusting CA, presenting CERT/KEY when given, then one read: a server that
refuses the client's certificate (or its absence) sends an alert or
closes; one that accepts either waits (HTTP/2 or Kafka: the client speaks
first) or sends its first frame (HTTP/2 SETTINGS).
"""
import socket
import ssl
import sys

READ_TIMEOUT = 3.0


def connect(addr):
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def plaintext(addr):
    s = connect(addr)
    # An HTTP/2 preface and a Kafka-style size prefix: neither is a TLS record.
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x0a" + b"\x00" * 10)
    s.settimeout(READ_TIMEOUT)
    try:
        data = s.recv(1024)
    except socket.timeout:
        return "accepted: the connection stays open after plaintext bytes"
    except OSError as e:
        return f"refused: {e}"
    if not data:
        return "refused: closed"
    if data[0] == 0x15:
        return "refused: TLS alert"
    return f"accepted: answered {data[:12]!r}"


def tls(addr, ca, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(cert, key)
    s = connect(addr)
    try:
        t = ctx.wrap_socket(s)
    except (ssl.SSLError, OSError) as e:
        return f"refused: handshake: {e}"
    t.settimeout(READ_TIMEOUT)
    try:
        data = t.recv(1024)
    except socket.timeout:
        return "accepted: handshake done, the server waits for a request"
    except (ssl.SSLError, OSError) as e:
        return f"refused: {e}"
    if not data:
        return "refused: closed after the handshake"
    return f"accepted: handshake done, answered {len(data)} bytes"


def main(argv):
    if len(argv) == 3 and argv[2] == "plaintext":
        print(plaintext(argv[1]))
    elif len(argv) in (4, 6) and argv[2] == "tls":
        print(tls(argv[1], *argv[3:]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
