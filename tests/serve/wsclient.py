#!/usr/bin/env python3
"""A minimal WebSocket client (RFC 6455, standard library only) for the serve tests: it speaks to
`virtus serve`'s terminals the way a browser does, and can also send what a browser never would."""
import base64
import hashlib
import os
import socket
import ssl
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WsError(Exception):
    pass


class WebSocket:
    def __init__(self, host, port, path, headers=None, timeout=10, tls=False):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls:  # the tests' certificates are self-signed
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock, server_hostname=host)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise WsError(f"connection closed during the handshake: {head!r}")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        status_line = head.split(b"\r\n")[0].decode()
        self.status = int(status_line.split()[1])
        self.head = head.decode(errors="replace")
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            if f"Sec-WebSocket-Accept: {want}".lower() not in self.head.lower():
                raise WsError(f"wrong Sec-WebSocket-Accept in {self.head!r}")

    def send_frame(self, opcode, payload, fin=True, masked=True, rsv=0):
        header = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
        n = len(payload)
        mbit = 0x80 if masked else 0
        if n < 126:
            header += bytes([mbit | n])
        elif n < 65536:
            header += bytes([mbit | 126]) + struct.pack(">H", n)
        else:
            header += bytes([mbit | 127]) + struct.pack(">Q", n)
        if masked:
            mask = os.urandom(4)
            header += mask
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 65536 else \
                (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        self.sock.sendall(header + payload)

    def send_binary(self, data):
        self.send_frame(2, data)

    def send_text(self, text):
        self.send_frame(1, text.encode())

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise WsError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self):
        """(opcode, payload) of the next frame from the server."""
        b0, b1 = self._read(2)
        if b1 & 0x80:
            raise WsError("the server masked a frame")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read(8))[0]
        return b0 & 0x0F, self._read(n)

    def read_until(self, needle, timeout=10):
        """Terminal output (binary frames) until it holds needle; returns all of it."""
        self.sock.settimeout(timeout)
        out = b""
        while needle not in out:
            op, data = self.recv_frame()
            if op == 2:
                out += data
            elif op == 8:
                raise WsError(f"closed ({data!r}) before {needle!r} came; got {out!r}")
        return out

    def close(self):
        self.sock.close()
