#!/usr/bin/env python3
"""Seed inputs for the device fuzz targets (layout: tests/fuzz/fuzz_ring.h): well-formed rings a real driver
would post, from which libFuzzer mutates. Usage: ring_seeds.py console|balloon|rng|blk|scsi OUTDIR"""
import os, struct, sys

RING_STRIDE = 0x200

class Guest:
    def __init__(self, features, qsizes_log2):
        self.hdr = bytes([features] + [q for q in qsizes_log2] + [0] * (4 - len(qsizes_log2)))
        self.sizes = [1 << q for q in qsizes_log2]
        self.ram = bytearray(0x1400)
        self.ndesc = [0] * len(qsizes_log2)
        self.navail = [0] * len(qsizes_log2)

    def put(self, gpa, data):
        self.ram[gpa:gpa + len(data)] = data

    def desc_at(self, table, i, addr, length, flags, nxt=0):
        self.put(table + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def post(self, q, segs):
        """One chain on queue q: segs = [(gpa, len, writable)], chained with NEXT."""
        base, size = q * RING_STRIDE, self.sizes[q]
        head = self.ndesc[q]
        for k, (gpa, length, w) in enumerate(segs):
            i = self.ndesc[q]
            last = k == len(segs) - 1
            self.desc_at(base, i, gpa, length, (2 if w else 0) | (0 if last else 1), 0 if last else i + 1)
            self.ndesc[q] += 1
        self.avail(q, head)

    def post_indirect(self, q, table, segs):
        base = q * RING_STRIDE
        for k, (gpa, length, w) in enumerate(segs):
            last = k == len(segs) - 1
            self.desc_at(table, k, gpa, length, (2 if w else 0) | (0 if last else 1), 0 if last else k + 1)
        i = self.ndesc[q]
        self.desc_at(base, i, table, 16 * len(segs), 4)
        self.ndesc[q] += 1
        self.avail(q, i)

    def avail(self, q, head):
        base, size = q * RING_STRIDE, self.sizes[q]
        avail = base + 16 * size
        self.put(avail + 4 + 2 * (self.navail[q] % size), struct.pack("<H", head))
        self.navail[q] += 1
        self.put(avail + 2, struct.pack("<H", self.navail[q]))

    def input(self, script):
        return self.hdr + bytes([len(script)]) + bytes(script) + bytes(self.ram)

def kick(q):
    return q << 3

def console():
    out = {}
    g = Guest(3, [2, 2])   # event idx + indirect, 4-entry queues
    g.post(0, [(0x1000, 64, True)])
    g.post(0, [(0x1040, 8, True), (0x1048, 8, True)])
    g.put(0x1100, b"hello, host\n")
    g.post(1, [(0x1100, 12, False)])
    g.post_indirect(1, 0x1200, [(0x1100, 6, False), (0x1106, 6, False)])
    out["rx-tx"] = g.input([4 | 1 << 3, kick(1), kick(0), 4 | 2 << 3, kick(0), 7])
    out["input-before-output"] = g.input([4 | 31 << 3, kick(0), kick(1), 6, 5, kick(1)])
    return out

def balloon():
    out = {}
    pfns = lambda *p: struct.pack("<%dI" % len(p), *p)
    g = Guest(3 | 1 << 4, [2, 2, 2])   # event idx, indirect, DEFLATE_ON_OOM
    g.put(0x1000, pfns(2, 3, 3, 0xffffffff, 16, 15))
    g.post(0, [(0x1000, 24, False)])
    g.post(0, [(0x1000, 6, False), (0x1006, 10, False)])   # PFNs split across segments
    g.put(0x1100, pfns(2, 3))
    g.post(1, [(0x1100, 8, False)])
    g.post_indirect(0, 0x1200, [(0x1000, 8, False), (0x1008, 8, False)])
    out["inflate-deflate"] = g.input([kick(0), kick(1), 4 | 2 << 3 | 1 << 5, 6, 7])
    out["inflate-reset-inflate"] = g.input([kick(0), 5, kick(0), kick(2)])
    return out

def blk():
    """A write, a read and a flush in flight together, then the same heads posted again before they
    complete (a guest error), a reset with requests in flight, and the ring anew."""
    out = {}
    hdr = lambda t, sector: struct.pack("<IIQ", t, 0, sector)
    g = Guest(3, [3])   # event idx + indirect, 8 entries
    g.put(0x1000, hdr(1, 0))      # VIRTIO_BLK_T_OUT at sector 0
    g.put(0x1010, hdr(0, 0))      # VIRTIO_BLK_T_IN
    g.put(0x1020, hdr(4, 0))      # VIRTIO_BLK_T_FLUSH
    g.put(0x1100, b"x" * 512)
    g.post(0, [(0x1000, 16, False), (0x1100, 512, False), (0x1030, 1, True)])
    g.post(0, [(0x1010, 16, False), (0x1300, 512, True), (0x1031, 1, True)])
    g.post_indirect(0, 0x1200, [(0x1020, 16, False), (0x1032, 1, True)])
    out["write-read-flush"] = g.input([kick(0), 4, 4, 6])
    g.avail(0, 0)                 # head 0 again while its write may be in flight
    out["repost-in-flight"] = g.input([kick(0), kick(0), 4, 5, kick(0), 4])
    out["reset-in-flight"] = g.input([kick(0), 5 | 8, kick(0), 4, 5, kick(0), 4])
    return out

def rng():
    g = Guest(3, [2])
    g.post(0, [(0x1000, 64, True)])
    g.post_indirect(0, 0x1200, [(0x1040, 16, True), (0x1050, 16, True)])
    return {"two-requests": g.input([kick(0), 7, 5, kick(0)])}

def scsi():
    """What Linux's sr sends first (INQUIRY, TEST UNIT READY), a READ(10) of two blocks, a READ TOC and a
    task-management request; then the host swaps the disc and the guest reads again."""
    g = Guest(3, [2, 2, 3])   # event idx + indirect; control and event queues of 4, requests 8
    g.ram = bytearray(0x3000)
    def req(cdb):
        return bytes([1, 0, 0x40, 0]) + bytes(15) + cdb + bytes(32 - len(cdb))
    g.put(0x1000, req(bytes([0x12, 0, 0, 0, 36, 0])))                          # INQUIRY
    g.put(0x1040, req(bytes([0x00] * 6)))                                     # TEST UNIT READY
    g.put(0x1080, req(bytes([0x28, 0, 0, 0, 0, 1, 0, 0, 2, 0])))              # READ(10) LBA 1, 2 blocks
    g.put(0x10c0, req(bytes([0x43, 2, 0, 0, 0, 0, 0, 0, 12, 0])))             # READ TOC, MSF
    g.post(2, [(0x1000, 51, False), (0x1200, 108, True), (0x1400, 36, True)])
    g.post(2, [(0x1040, 51, False), (0x1280, 108, True)])
    g.post(2, [(0x1080, 51, False), (0x1300, 108, True), (0x2000, 4096, True)])
    g.post_indirect(2, 0x1500, [(0x10c0, 51, False), (0x1600, 108, True), (0x1700, 12, True)])
    g.put(0x1800, struct.pack("<II", 0, 0) + bytes([1, 0, 0x40, 0]) + bytes(12))  # TMF abort task
    g.post(0, [(0x1800, 24, False), (0x1820, 1, True)])
    return {"first-commands": g.input([kick(2), kick(0), 6]),
            "swap-and-read": g.input([kick(2), 4, 4 | 16, kick(2), 4 | 8, 5, kick(2)])}

if __name__ == "__main__":
    kind, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    for name, data in {"console": console, "balloon": balloon, "rng": rng, "blk": blk, "scsi": scsi}[kind]().items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
