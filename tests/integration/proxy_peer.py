#!/usr/bin/python3
"""Test peers for tests/integration/proxy_test.sh: backends and clients of the
L4 proxy, from Python's standard library only.

  proxy_peer.py echo PORT NAME        TCP: sends "NAME\\n", echoes until EOF, then half-closes
  proxy_peer.py stall PORT            TCP: accepts and never reads or writes
  proxy_peer.py udp-echo PORT NAME    UDP: answers each datagram with "NAME:" + datagram
  proxy_peer.py bulk HOST:PORT BYTES  sends BYTES random bytes, half-closes, reads the echo to EOF;
                                      prints the backend's name, then "ok" when every byte came back
  proxy_peer.py hold HOST:PORT SECONDS  reads the backend's name, then every 0.1 s sends a line and reads
                                      its echo; prints "NAME lines until=closed|open" after SECONDS or
                                      when the connection ends
  proxy_peer.py silent HOST:PORT N FILE  opens N connections that never send, writes "ready" to FILE,
                                      and holds them until killed
  proxy_peer.py udp HOST:PORT MESSAGE   one datagram, prints the answer
"""
import os
import resource
import socket
import sys
import threading
import time


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def serve_tcp(port, handle):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(512)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def echo(name):
    def handle(c):
        try:
            c.sendall(name.encode() + b"\n")
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()
    return handle


def stall(c):
    time.sleep(3600)


def udp_echo(port, name):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    while True:
        b, peer = s.recvfrom(65536)
        s.sendto(name.encode() + b":" + b, peer)


def read_line(c):
    out = b""
    while not out.endswith(b"\n"):
        b = c.recv(1)
        if not b:
            break
        out += b
    return out.decode().strip()


def bulk(target, size):
    data = os.urandom(size)
    c = socket.create_connection(addr(target), timeout=30)
    name = read_line(c)
    back = bytearray()

    def writer():
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=writer)
    t.start()
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        back += b
    t.join()
    print(name)
    print("ok" if bytes(back) == data else "MISMATCH: sent %d bytes, got %d back" % (len(data), len(back)))


def hold(target, seconds):
    c = socket.create_connection(addr(target), timeout=5)
    name = read_line(c)
    lines, state = 0, "open"
    end = time.time() + seconds
    while time.time() < end:
        try:
            c.sendall(b"x\n")
            if read_line(c) != "x":
                state = "closed"
                break
        except OSError:
            state = "closed"
            break
        lines += 1
        time.sleep(0.1)
    # The wall-clock second it ended: a test compares it with when it switched the target.
    print(name, lines, "until=" + state, "%.3f" % time.time(), flush=True)


def silent(target, n, ready):
    conns = [socket.create_connection(addr(target), timeout=5) for _ in range(n)]
    with open(ready, "w") as f:
        f.write("ready\n")
    time.sleep(3600)
    del conns


def udp(target, message):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(message.encode(), addr(target))
    print(s.recvfrom(65536)[0].decode())


def main():
    # Thousands of sockets for the slowloris: the soft limit is often 1024.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "echo":
        serve_tcp(int(args[0]), echo(args[1]))
    elif cmd == "stall":
        serve_tcp(int(args[0]), stall)
    elif cmd == "udp-echo":
        udp_echo(int(args[0]), args[1])
    elif cmd == "bulk":
        bulk(args[0], int(args[1]))
    elif cmd == "hold":
        hold(args[0], float(args[1]))
    elif cmd == "silent":
        silent(args[0], int(args[1]), args[2])
    elif cmd == "udp":
        udp(args[0], args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
