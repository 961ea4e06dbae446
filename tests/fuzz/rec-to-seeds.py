#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Turns recordings of tests/fuzz/record-proxy (format at the top of
# record-proxy.c) into seeds of the fuzz targets, in each target's input
# layout (tests/fuzz/fuzz-msg.h and the top of each harness):
#   front-end requests            -> fuzz-msg-request (channel 0)
#   back-end channel requests     -> fuzz-msg-request (channel 1) and, the
#                                    channel's stream, fuzz-backend-chan
#   main-socket replies           -> fuzz-msg-reply (channel 0), and
#                                    fuzz-reply-path for the requests it makes
#   our replies on the channel    -> fuzz-msg-reply (channel 1, acked)
#   GET_INFLIGHT_FD replies       -> fuzz-inflight-take (with the fd's length)
#   listening SET_MEM_TABLE/ADD_MEM_REG replies -> fuzz-postcopy-reply
# Seeds are named rec-BACKEND-NNN; identical inputs are written once (the
# first back-end that produced them names them), and messages that differ
# only in values the harness does not branch on (addresses, eventfd
# numbers) are kept once per back-end, so the corpus stays small.
#
#   rec-to-seeds.py --corpus DIR NAME=FILE...   replace DIR/*/rec-* with seeds
#   rec-to-seeds.py --dump FILE                 one line per message
import argparse
import hashlib
import os
import struct
import sys

VERSION, REPLY, NEED_REPLY = 0x1, 0x4, 0x8
HDR = 12
FD_FILE, FD_EVENTFD, FD_PIPE, FD_SOCKET, FD_UFFD, FD_OTHER = range(6)

FRONTEND_NAMES = {
    1: "GET_FEATURES", 2: "SET_FEATURES", 3: "SET_OWNER", 4: "RESET_OWNER",
    5: "SET_MEM_TABLE", 6: "SET_LOG_BASE", 7: "SET_LOG_FD", 8: "SET_VRING_NUM",
    9: "SET_VRING_ADDR", 10: "SET_VRING_BASE", 11: "GET_VRING_BASE",
    12: "SET_VRING_KICK", 13: "SET_VRING_CALL", 14: "SET_VRING_ERR",
    15: "GET_PROTOCOL_FEATURES", 16: "SET_PROTOCOL_FEATURES", 17: "GET_QUEUE_NUM",
    18: "SET_VRING_ENABLE", 19: "SEND_RARP", 20: "NET_SET_MTU",
    21: "SET_BACKEND_REQ_FD", 22: "IOTLB_MSG", 23: "SET_VRING_ENDIAN",
    24: "GET_CONFIG", 25: "SET_CONFIG", 26: "CREATE_CRYPTO_SESSION",
    27: "CLOSE_CRYPTO_SESSION", 28: "POSTCOPY_ADVISE", 29: "POSTCOPY_LISTEN",
    30: "POSTCOPY_END", 31: "GET_INFLIGHT_FD", 32: "SET_INFLIGHT_FD",
    33: "GPU_SET_SOCKET", 34: "RESET_DEVICE", 35: "VRING_KICK",
    36: "GET_MAX_MEM_SLOTS", 37: "ADD_MEM_REG", 38: "REM_MEM_REG", 39: "SET_STATUS",
    40: "GET_STATUS", 41: "GET_SHARED_OBJECT", 42: "SET_DEVICE_STATE_FD",
    43: "CHECK_DEVICE_STATE",
}
BACKEND_NAMES = {
    1: "IOTLB_MSG", 2: "CONFIG_CHANGE_MSG", 3: "VRING_HOST_NOTIFIER_MSG",
    4: "VRING_CALL", 5: "VRING_ERR", 6: "SHARED_OBJECT_ADD",
    7: "SHARED_OBJECT_REMOVE", 8: "SHARED_OBJECT_LOOKUP",
}
# Front-end requests whose reply is their own payload, not a REPLY_ACK ack.
HAS_REPLY = {1, 11, 15, 17, 24, 26, 28, 30, 31, 36, 40, 41, 42, 43}
# SET_MEM_TABLE and ADD_MEM_REG get a memory table back while postcopy listens.
LISTENING_REPLY = {5, 37}
# fuzz-reply-path's requests[] (its byte 0 indexes them).
REPLY_PATH_INDEX = {1: 0, 15: 1, 17: 2, 40: 3, 36: 4, 11: 5, 24: 6, 31: 7, 41: 8,
                    3: 9, 8: 10}
# fuzz-reply-path's fd kinds (byte 1 bits 2-3): memfd, eventfd, pipe, socket.
REPLY_PATH_FD = {FD_FILE: 0, FD_EVENTFD: 1, FD_PIPE: 2, FD_SOCKET: 3}
# fuzz-backend-chan's fd kinds (chunk byte bits 0-1): memfd page, eventfd, empty memfd, pipe.
CHAN_FD = {FD_EVENTFD: 1, FD_PIPE: 3}
PF_BACKEND_SEND_FD, PF_HOST_NOTIFIER, PF_SHARED_OBJECT = 10, 11, 18
PF_CONFIG, PF_INBAND, PF_REPLY_ACK = 9, 14, 3
MAX_LEN = {"fuzz-backend-chan": 1024, "fuzz-reply-path": 600,
           "fuzz-postcopy-reply": 600}
TARGETS = ["fuzz-msg-request", "fuzz-msg-reply", "fuzz-reply-path",
           "fuzz-backend-chan", "fuzz-inflight-take", "fuzz-postcopy-reply"]


class Msg:
    def __init__(self, ch, to_vmm, conn, fds, data):
        self.ch, self.to_vmm, self.conn, self.fds, self.data = ch, to_vmm, conn, fds, data
        self.request, self.flags, self.size = struct.unpack_from("<III", data)
        self.payload = data[HDR:]

    def name(self):
        names = BACKEND_NAMES if self.ch else FRONTEND_NAMES
        return names.get(self.request, "UNKNOWN_%d" % self.request)

    def describe(self):
        side = ("backend-chan " if self.ch else "") + ("B>F" if self.to_vmm else "F>B")
        kinds = "".join("fepsuo"[k] for k, _ in self.fds)
        return "%d %s %s flags=0x%x size=%d fds=%d%s" % (
            self.conn, side, self.name(), self.flags, self.size, len(self.fds),
            (" (" + kinds + ")") if kinds else "")


def read_recording(path):
    with open(path, "rb") as f:
        raw = f.read()
    pos, msgs = 0, []
    while pos < len(raw):
        if raw[pos:pos + 4] != b"VURC" or pos + 12 > len(raw):
            sys.exit("%s: not a record-proxy recording at byte %d" % (path, pos))
        ch, to_vmm, nfds, conn, length = struct.unpack_from("<BBBBI", raw, pos + 4)
        pos += 12
        fds = [struct.unpack_from("<QQ", raw, pos + 16 * i) for i in range(nfds)]
        pos += 16 * nfds
        data = raw[pos:pos + length]
        pos += length
        if len(data) != length or length < HDR:
            sys.exit("%s: a record cut short" % path)
        msgs.append(Msg(ch, to_vmm, conn, fds, data))
    return msgs


def ctl(ch=0, nfds=0, acked=False):
    return bytes([ch | (min(nfds, 15) << 1) | (0x20 if acked else 0)])


def pair_replies(msgs):
    """Yields (request, reply) on each channel: replies come in request order."""
    pending = {0: [], 1: []}
    listening = False
    for m in msgs:
        asks = m.to_vmm == (m.ch == 1)      # a request: F>B on main, B>F on the channel
        if asks:
            if m.ch == 0 and m.request in (29, 30):     # POSTCOPY_LISTEN, _END
                listening = m.request == 29
            if (m.flags & NEED_REPLY or (m.ch == 0 and m.request in HAS_REPLY) or
                    (m.ch == 0 and listening and m.request in LISTENING_REPLY and
                     m.size > 8)):
                pending[m.ch].append(m)
            continue
        queue = pending[m.ch]
        req = None
        for i, r in enumerate(queue):
            if r.request == m.request:
                req = queue.pop(i)
                break
        yield req, m


def seeds_of(msgs):
    """(target, shape key, bytes) for every seed the recording gives."""
    out = []
    pf = 0
    for m in msgs:
        asks = m.to_vmm == (m.ch == 1)
        if asks:
            # The shape: what the harness branches on, not addresses or numbers.
            key = (m.ch, m.request, m.flags, m.size, len(m.fds))
            out.append(("fuzz-msg-request", key, ctl(m.ch, len(m.fds)) + m.data))
        if m.ch == 0 and not m.to_vmm and m.request == 16 and m.size == 8:
            pf = struct.unpack_from("<Q", m.payload)[0]     # what we acked
    for req, rep in pair_replies(msgs):
        acked = req is not None and req.flags & NEED_REPLY and not (
            rep.ch == 0 and rep.request in HAS_REPLY) and not (
            rep.ch == 0 and rep.request in LISTENING_REPLY and rep.size != 8)
        acked = bool(acked) or (rep.ch == 1)
        key = (rep.ch, rep.request, rep.flags, rep.size, len(rep.fds), acked)
        out.append(("fuzz-msg-reply", key,
                    ctl(rep.ch, len(rep.fds), acked) + rep.data))
        if rep.ch == 0 and rep.request in REPLY_PATH_INDEX:
            idx = REPLY_PATH_INDEX[rep.request]
            if idx >= 9 and not acked:
                continue
            nfds = min(len(rep.fds), 3)
            kind = REPLY_PATH_FD.get(rep.fds[0][0], 0) if rep.fds else 0
            seed = (bytes([idx | (0x80 if acked or pf & (1 << PF_REPLY_ACK) else 0),
                           nfds | kind << 2]) +
                    struct.pack("<HH", 0xffff, 0) + rep.data)
            out.append(("fuzz-reply-path", key, seed))
        if rep.ch == 0 and rep.request == 31 and rep.size == 24:
            kind, length = (0, rep.fds[0][1]) if rep.fds and rep.fds[0][0] == FD_FILE else (1, 0)
            out.append(("fuzz-inflight-take", (31,),
                        rep.payload + bytes([kind]) + struct.pack("<Q", length)))
        if (rep.ch == 0 and req is not None and rep.request in LISTENING_REPLY and
                rep.size > 8):
            out.append(("fuzz-postcopy-reply", key, postcopy_seed(req, rep, pf)))
    chan = backend_chan_seed(msgs, pf)
    if chan:
        out.append(("fuzz-backend-chan", ("stream",), chan))
    return out


def postcopy_seed(req, rep, pf):
    """fuzz-postcopy-reply: regions as we sent them, then the reply uncut."""
    if req.request == 37:
        regs = [struct.unpack_from("<QQ", req.payload, 8)]
        head = 0x01
    else:
        n = struct.unpack_from("<I", req.payload)[0]
        regs = [struct.unpack_from("<QQ", req.payload, 8 + 32 * i) for i in range(min(n, 8))]
        head = (len(regs) - 1) << 1
    if pf & (1 << PF_REPLY_ACK):
        head |= 0x80
    return (bytes([head]) + struct.pack("<H", 0xffff) +
            b"".join(struct.pack("<QQ", g, s) for g, s in regs) + rep.data)


def backend_chan_seed(msgs, pf):
    """The back-end channel's requests as fuzz-backend-chan chunks, loop run after each."""
    first = 0
    for bit, flag in ((PF_BACKEND_SEND_FD, 0x01), (PF_HOST_NOTIFIER, 0x02),
                      (PF_SHARED_OBJECT, 0x04), (PF_CONFIG, 0x08), (PF_INBAND, 0x10),
                      (PF_REPLY_ACK, 0x20)):
        if pf & (1 << bit):
            first |= flag
    first |= 0x40       # the VMM's translation succeeds, as the real one's did
    body = b""
    seen = set()
    for m in msgs:
        if m.ch != 1 or not m.to_vmm:
            continue
        key = (m.request, m.flags, m.size, len(m.fds))
        if key in seen:
            continue        # hundreds of IOTLB misses alike: one of each shape
        seen.add(key)
        kind = CHAN_FD.get(m.fds[0][0], 0) if m.fds else 0
        nfds = min(len(m.fds), 3)
        chunk = b""
        data = m.data
        while data:
            part, data = data[:255], data[255:]
            c = kind | nfds << 2 if not chunk else 0
            chunk += bytes([c | (0x10 if not data else 0), len(part)]) + part
        if len(body) + len(chunk) + 1 > MAX_LEN["fuzz-backend-chan"]:
            break
        body += chunk
    return bytes([first]) + body if body else b""


def dump(path):
    for m in read_recording(path):
        print(m.describe())


def write_corpus(corpus, recs):
    for t in TARGETS:
        d = os.path.join(corpus, t)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.startswith("rec-"):
                os.unlink(os.path.join(d, f))
    # What the synthetic seeds already hold is not written again.
    seen = {}
    for t in TARGETS:
        d = os.path.join(corpus, t)
        seen[t] = {hashlib.sha1(open(os.path.join(d, f), "rb").read()).digest()
                   for f in os.listdir(d)}
    counts = {}
    for name, path in recs:
        shapes = set()
        n = {}
        for target, key, data in seeds_of(read_recording(path)):
            if len(data) > MAX_LEN.get(target, 4200):
                continue
            digest = hashlib.sha1(data).digest()
            if digest in seen[target] or (target, key) in shapes:
                continue
            seen[target].add(digest)
            shapes.add((target, key))
            n[target] = n.get(target, 0) + 1
            fname = "rec-%s-%03d" % (name, n[target])
            with open(os.path.join(corpus, target, fname), "wb") as f:
                f.write(data)
        for target, k in n.items():
            counts.setdefault(target, {})[name] = k
    for t in TARGETS:
        per = counts.get(t, {})
        print("rec-to-seeds: %-20s %3d  %s" % (
            t, sum(per.values()), " ".join("%s=%d" % kv for kv in sorted(per.items()))))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus")
    ap.add_argument("--dump")
    ap.add_argument("recs", nargs="*", help="NAME=FILE")
    a = ap.parse_args()
    if a.dump:
        dump(a.dump)
        return
    if not a.corpus or not a.recs:
        ap.error("--corpus DIR NAME=FILE... or --dump FILE")
    write_corpus(a.corpus, [r.split("=", 1) for r in a.recs])


if __name__ == "__main__":
    main()
