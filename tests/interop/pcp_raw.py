#!/usr/bin/env python3
"""Send raw bytes to a PCP / NAT-PMP server over UDP and print the reply as hex.

A development tool for the interop lab: run it inside the client namespace
(tests/interop/lab.sh cli python3 tests/interop/pcp_raw.py ...) to capture
request/response vectors from the real gateway.

  pcp_raw.py 02 00 00 00 ...              bytes given as hex on the command line
  pcp_raw.py -f tests/vectors/x-req.hex   bytes from a vector file ('#' comments)
  pcp_raw.py -f x-req.hex -o x-resp.hex -c "what it is"   also save the first reply
  pcp_raw.py --listen 5350 -t 3           print datagrams arriving on a port
                                          (unsolicited ANNOUNCE / NAT-PMP notices)

Exit status: 0 a reply arrived, 1 no reply within the timeout, 2 error
(including ICMP port unreachable, reported as ECONNREFUSED on the connected socket).
"""

import argparse
import errno
import ipaddress
import socket
import sys
import time

PCP_RESULTS = {
    0: "SUCCESS", 1: "UNSUPP_VERSION", 2: "NOT_AUTHORIZED", 3: "MALFORMED_REQUEST",
    4: "UNSUPP_OPCODE", 5: "UNSUPP_OPTION", 6: "MALFORMED_OPTION", 7: "NETWORK_FAILURE",
    8: "NO_RESOURCES", 9: "UNSUPP_PROTOCOL", 10: "USER_EX_QUOTA", 11: "CANNOT_PROVIDE_EXTERNAL",
    12: "ADDRESS_MISMATCH", 13: "EXCESSIVE_REMOTE_PEERS",
}
PCP_OPCODES = {0: "ANNOUNCE", 1: "MAP", 2: "PEER"}


def parse_hex(text):
    """Vector format: '#' starts a comment line; bytes as hex separated by whitespace."""
    out = bytearray()
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for tok in line.split():
            tok = tok.removeprefix("0x")
            if len(tok) % 2:
                raise ValueError("odd number of hex digits in %r" % tok)
            out += bytes.fromhex(tok)
    return bytes(out)


def format_hex(data):
    return "\n".join(" ".join("%02x" % b for b in data[i:i + 16]) for i in range(0, len(data), 16))


def addr16(b):
    a = ipaddress.IPv6Address(bytes(b))
    return str(a.ipv4_mapped) if a.ipv4_mapped else str(a)


def describe(data):
    """One-line summary of a PCP or NAT-PMP reply (RFC 6887 section 7.2, RFC 6886 section 3)."""
    if len(data) < 4:
        return "%d bytes" % len(data)
    be16 = lambda o: int.from_bytes(data[o:o + 2], "big")
    be32 = lambda o: int.from_bytes(data[o:o + 4], "big")
    if data[0] == 0 and len(data) >= 24:
        # miniupnpd's answer to a too-short or misaligned PCP request: PCP layout, version byte 0
        return "version 0 in PCP layout: opcode byte 0x%02x result=%d (%s) lifetime=%d epoch=%d" % (
            data[1], data[3], PCP_RESULTS.get(data[3], "?"), be32(4), be32(8))
    if data[0] == 0:
        s = "NAT-PMP op=%d result=%d" % (data[1], be16(2))
        if len(data) >= 8:
            s += " epoch=%d" % be32(4)
        if data[1] == 128 and len(data) >= 12:
            s += " external=%s" % socket.inet_ntoa(data[8:12])
        elif data[1] in (129, 130) and len(data) >= 16:
            s += " internal=%d external=%d lifetime=%d" % (be16(8), be16(10), be32(12))
        return s
    if len(data) < 24:
        return "version %d, %d bytes" % (data[0], len(data))
    op = data[1] & 0x7F
    s = "PCP v%d %s %s result=%d (%s) lifetime=%d epoch=%d" % (
        data[0], PCP_OPCODES.get(op, "opcode %d" % op), "response" if data[1] & 0x80 else "request",
        data[3], PCP_RESULTS.get(data[3], "?"), be32(4), be32(8))
    if op in (1, 2) and len(data) >= 60:
        s += " proto=%d internal=%d external=[%s]:%d" % (data[36], be16(40), addr16(data[44:60]), be16(42))
    if op == 2 and len(data) >= 80:
        s += " peer=[%s]:%d" % (addr16(data[64:80]), be16(60))
    return s


def write_vector(path, data, comments):
    with open(path, "w") as f:
        for c in comments:
            for line in c.splitlines():
                f.write("# %s\n" % line if line else "#\n")
        f.write(format_hex(data) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("hex", nargs="*", help="bytes to send, in hex")
    ap.add_argument("-f", "--file", help="read the bytes from a vector file ('-' = stdin)")
    ap.add_argument("-s", "--server", default="192.168.77.1", help="server address (default 192.168.77.1)")
    ap.add_argument("-p", "--port", type=int, default=5351, help="server port (default 5351)")
    ap.add_argument("-b", "--bind", help="local source address")
    ap.add_argument("-t", "--timeout", type=float, default=1.0, help="seconds to wait (default 1)")
    ap.add_argument("-n", "--replies", type=int, default=1, help="replies to wait for (default 1)")
    ap.add_argument("-o", "--resp-out", help="write the first reply to this vector file")
    ap.add_argument("-c", "--comment", action="append", default=[],
                    help="comment line for --resp-out (default: the request file's comments)")
    ap.add_argument("--listen", type=int, metavar="PORT", help="send nothing; print datagrams arriving on PORT")
    args = ap.parse_args()

    family = socket.AF_INET6 if ":" in (args.bind or args.server) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    if args.listen is not None:
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", args.listen))
        payload = None
    else:
        if args.file:
            text = sys.stdin.read() if args.file == "-" else open(args.file).read()
            if not args.comment:
                args.comment = ["reply to %s" % args.file] + [
                    l[1:].strip() for l in text.splitlines() if l.startswith("#")]
        else:
            text = " ".join(args.hex)
        try:
            payload = parse_hex(text)
        except ValueError as e:
            print("pcp_raw: %s" % e, file=sys.stderr)
            return 2
        if not payload:
            print("pcp_raw: nothing to send", file=sys.stderr)
            return 2
        if args.bind:
            sock.bind((args.bind, 0))
        # connected, so that an ICMP port unreachable surfaces as ECONNREFUSED
        sock.connect((args.server, args.port))
        local = sock.getsockname()
        print("sent %d bytes [%s]:%d -> [%s]:%d" % (len(payload), local[0], local[1], args.server, args.port))
        print(format_hex(payload))

    replies = []
    start = time.monotonic()
    deadline = start + args.timeout
    try:
        if payload is not None:
            sock.send(payload)
        while len(replies) < args.replies:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data, peer = sock.recvfrom(2048)
            except socket.timeout:
                break
            ms = (time.monotonic() - start) * 1000
            replies.append(data)
            print("reply %d from [%s]:%d, %d bytes, +%.2f ms: %s" % (
                len(replies), peer[0], peer[1], len(data), ms, describe(data)))
            print(format_hex(data))
    except OSError as e:
        if e.errno == errno.ECONNREFUSED:
            print("pcp_raw: connection refused (ICMP port unreachable)", file=sys.stderr)
        else:
            print("pcp_raw: %s" % e, file=sys.stderr)
        return 2

    if not replies:
        print("no reply within %.2f s" % args.timeout)
        return 1
    if args.resp_out:
        write_vector(args.resp_out, replies[0], args.comment + ["decoded: " + describe(replies[0])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
