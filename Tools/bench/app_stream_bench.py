"""The app-stream benchmark's two sides (Tools/bench/app-stream.sh).

    app_stream_bench.py create NAME IMAGE PORT     a session with PORT preopened (official client library)
    app_stream_bench.py serve PORT                 the server, inside the session
    app_stream_bench.py measure HOST PORT SHOST SPORT MIB [CHOST CPORT]
                                                   direct (HOST:PORT) against the stream (SHOST:SPORT),
                                                   and against a chain of plain relays with the
                                                   stream's hops (CHOST:CPORT) when given

Protocol: the client's first byte says what it wants. 'S': an 8-byte big-endian length N, then
N bytes; the server answers b'OK' once it has them all (no half-close needed, which a
WebSocket stream cannot carry). 'E': 64-byte messages echoed until the client closes."""
import socket
import socketserver
import statistics
import struct
import sys
import time

CHUNK = 1 << 20


def recv_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise EOFError("the peer closed early")
        data += part
    return bytes(data)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        kind = recv_exact(sock, 1)
        if kind == b"S":
            left = struct.unpack(">Q", recv_exact(sock, 8))[0]
            buf = bytearray(CHUNK)
            while left > 0:
                n = sock.recv_into(buf, min(left, CHUNK))
                if n == 0:
                    return
                left -= n
            sock.sendall(b"OK")
        elif kind == b"E":
            while True:
                try:
                    sock.sendall(recv_exact(sock, 64))
                except EOFError:
                    return


def connect(host, port):
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def throughput(host, port, size):
    sock = connect(host, port)
    block = bytes(CHUNK)
    start = time.perf_counter()
    sock.sendall(b"S" + struct.pack(">Q", size))
    sent = 0
    while sent < size:
        sock.sendall(block[: min(CHUNK, size - sent)])
        sent += min(CHUNK, size - sent)
    assert recv_exact(sock, 2) == b"OK"
    elapsed = time.perf_counter() - start
    sock.close()
    return size / elapsed / (1 << 20)


def round_trips(host, port, count=2000):
    sock = connect(host, port)
    sock.sendall(b"E")
    message = bytes(64)
    times = []
    for _ in range(100):  # warm-up
        sock.sendall(message)
        recv_exact(sock, 64)
    for _ in range(count):
        start = time.perf_counter()
        sock.sendall(message)
        recv_exact(sock, 64)
        times.append(time.perf_counter() - start)
    sock.close()
    return statistics.median(times) * 1e6, sorted(times)[int(count * 0.99)] * 1e6


def main():
    mode = sys.argv[1]
    if mode == "serve":
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        socketserver.ThreadingTCPServer.daemon_threads = True
        with socketserver.ThreadingTCPServer(("0.0.0.0", int(sys.argv[2])), Handler) as server:
            server.serve_forever()
    elif mode == "create":
        from ai.backend.client.session import Session
        with Session() as api:
            api.ComputeSession.get_or_create(sys.argv[3], name=sys.argv[2], preopen_ports=[int(sys.argv[4])])
    elif mode == "measure":
        host, port, shost, sport, mib = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
        size = mib << 20
        chain = (sys.argv[7], int(sys.argv[8])) if len(sys.argv) > 8 else None
        print(f"one connection moving {mib} MiB client -> container (three runs each, alternating):")
        direct, stream, relays = [], [], []
        for _ in range(3):
            direct.append(throughput(host, port, size))
            stream.append(throughput(shost, sport, size))
            if chain:
                relays.append(throughput(chain[0], chain[1], size))
        print(f"  direct TCP to the container: {' / '.join(f'{v:.0f}' for v in direct)} MiB/s")
        print(f"  through the app stream:      {' / '.join(f'{v:.0f}' for v in stream)} MiB/s")
        if chain:
            print(f"  through four socat relays:   {' / '.join(f'{v:.0f}' for v in relays)} MiB/s (the stream's hops, no WebSocket)")
        print(f"  stream / direct (best runs): {max(stream) / max(direct) * 100:.0f}% (goal >= 70%)")
        if chain:
            print(f"  socat chain / direct:        {max(relays) / max(direct) * 100:.0f}%; stream / socat chain: {max(stream) / max(relays) * 100:.0f}%")
        d50, d99 = round_trips(host, port)
        s50, s99 = round_trips(shost, sport)
        print("64-byte round trips (2,000, after 100 to warm up):")
        print(f"  direct: median {d50:.0f} us, p99 {d99:.0f} us")
        print(f"  stream: median {s50:.0f} us, p99 {s99:.0f} us")
        print(f"  added by the stream: {s50 - d50:.0f} us median (goal < 1000 us)")


if __name__ == "__main__":
    main()
