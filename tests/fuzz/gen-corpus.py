#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Writes the seed corpus of the fuzz targets (layouts in tests/fuzz/fuzz-msg.h
# and fuzz-inflight-take.c): well-formed requests and replies of the common
# messages and inflight areas, so the fuzzer starts from inputs that pass.
# Run from the source root: python3 tests/fuzz/gen-corpus.py
import os
import struct

VERSION, REPLY, NEED_REPLY = 0x1, 0x4, 0x8


def ctl(backend=False, nfds=0, acked=False):
    return bytes([(1 if backend else 0) | (nfds << 1) | (0x20 if acked else 0)])


def msg(req, flags, payload=b""):
    return struct.pack("<III", req, flags, len(payload)) + payload


def u64(v):
    return struct.pack("<Q", v)


def region(gpa, size, uva, off):
    return struct.pack("<QQQQ", gpa, size, uva, off)


def mem_table(n):
    regs = b"".join(region(i << 30, 1 << 30, 0x7f0000000000 + (i << 30), 0)
                    for i in range(n))
    return struct.pack("<II", n, 0) + regs


def config(offset, data):
    return struct.pack("<III", offset, len(data), 0) + data


requests = {
    "get-features": ctl() + msg(1, VERSION),
    "set-features": ctl() + msg(2, VERSION, u64(1 << 32 | 1 << 30)),
    "set-owner": ctl() + msg(3, VERSION),
    "set-mem-table-1": ctl(nfds=1) + msg(5, VERSION, mem_table(1)),
    "set-mem-table-2-ack": ctl(nfds=2) + msg(5, VERSION | NEED_REPLY, mem_table(2)),
    "set-vring-num": ctl() + msg(8, VERSION, struct.pack("<II", 0, 256)),
    "set-vring-addr": ctl() + msg(9, VERSION, struct.pack("<IIQQQQ", 1, 0, 0x1000,
                                                           0x3000, 0x2000, 0)),
    "set-vring-kick": ctl(nfds=1) + msg(12, VERSION, u64(1)),
    "set-vring-call-nofd": ctl() + msg(13, VERSION, u64(0x100 | 2)),
    "get-protocol-features": ctl() + msg(15, VERSION),
    "get-config": ctl() + msg(24, VERSION, config(0, bytes(16))),
    "set-config": ctl() + msg(25, VERSION, config(4, bytes(range(8)))),
    "be-config-change": ctl(backend=True) + msg(2, VERSION),
    "be-host-notifier": ctl(backend=True, nfds=1) + msg(3, VERSION,
                                                        struct.pack("<QQQ", 0, 4096, 0)),
}

replies = {
    "get-features": ctl() + msg(1, VERSION | REPLY, u64(1 << 32 | 1 << 30)),
    "get-protocol-features": ctl() + msg(15, VERSION | REPLY, u64(0x3fff)),
    "get-vring-base": ctl() + msg(11, VERSION | REPLY, struct.pack("<II", 1, 42)),
    "get-config": ctl() + msg(24, VERSION | REPLY, config(0, bytes(range(16)))),
    "set-mem-table-ack": ctl(acked=True) + msg(5, VERSION | REPLY, u64(0)),
    "set-mem-table-postcopy": ctl() + msg(5, VERSION | REPLY, mem_table(2)),
    "get-queue-num": ctl() + msg(17, VERSION | REPLY, u64(4)),
    "be-config-change-ack": ctl(backend=True, acked=True) + msg(2, VERSION | REPLY, u64(0)),
    "oversized": bytes([0x80]) + struct.pack("<III", 1, VERSION | REPLY, 0x10000),
}



def inflight(size, offset, nq, qs, fd_kind, file_len):
    return (struct.pack("<QQHH4x", size, offset, nq, qs) + bytes([fd_kind]) +
            struct.pack("<Q", file_len))


# fuzz-inflight-take: GET_INFLIGHT_FD reply payload, fd kind (0 memfd,
# 1 none, 2 pipe), memfd length.
inflights = {
    "split-2x256": inflight(2 * (16 + 16 * 256), 0, 2, 256, 0, 8192),
    "packed-1x128-offset": inflight(4096 + 32 + 32 * 128, 4096, 1, 128, 0, 16384),
    "past-end": inflight(2 * (16 + 16 * 256), 4096, 2, 256, 0, 8192),
    "no-fd": inflight(16 + 16 * 64, 0, 1, 64, 1, 0),
    "pipe": inflight(16 + 16 * 64, 0, 1, 64, 2, 0),
}



# fuzz-backend-chan (layout at the top of fuzz-backend-chan.c): a features
# byte, then chunks (control byte: fd kind, fd count, run the loop; length)
# of the raw stream the back-end writes on its channel.
PF_SEND_FD, PF_NOTIFIER, PF_SHARED, PF_CONFIG, PF_INBAND, PF_ACK = 1, 2, 4, 8, 16, 32
TRANSLATE_OK, CLOSE_AFTER = 0x40, 0x80
MEMFD, EVENTFD, EMPTY_MEMFD, PIPE = 0, 1, 2, 3
RUN = 0x10


def chunk(data, nfds=0, kind=MEMFD, run=True):
    return bytes([kind | (nfds << 2) | (RUN if run else 0), len(data)]) + data


def iotlb(iova, size, perm, typ):
    return struct.pack("<QQQBB6x", iova, size, 0, perm, typ)


UUID = bytes(range(1, 17))
config_change = msg(2, VERSION | NEED_REPLY)
chans = {
    "config-change-ack": bytes([PF_CONFIG | PF_ACK]) + chunk(config_change),
    "host-notifier": bytes([PF_SEND_FD | PF_NOTIFIER]) +
    chunk(msg(3, VERSION | NEED_REPLY, struct.pack("<QQQ", 1, 4096, 0)), nfds=1),
    "host-notifier-withdraw": bytes([PF_SEND_FD | PF_NOTIFIER]) +
    chunk(msg(3, VERSION, struct.pack("<QQQ", 0, 4096, 0)), nfds=1) +
    chunk(msg(3, VERSION, struct.pack("<QQQ", 0x100, 0, 0))),
    "host-notifier-empty-file": bytes([PF_SEND_FD | PF_NOTIFIER]) +
    chunk(msg(3, VERSION, struct.pack("<QQQ", 0, 4096, 0)), nfds=1, kind=EMPTY_MEMFD),
    "iotlb-miss": bytes([TRANSLATE_OK | PF_ACK]) +
    chunk(msg(1, VERSION | NEED_REPLY, iotlb(0x1000, 0, 1, 1))),
    "iotlb-access-fail": bytes([0]) + chunk(msg(1, VERSION, iotlb(0x2000, 0x1000, 3, 4))),
    "vring-call-err": bytes([PF_INBAND | PF_ACK]) +
    chunk(msg(4, VERSION | NEED_REPLY, struct.pack("<II", 0, 0))) +
    chunk(msg(5, VERSION, struct.pack("<II", 1, 0))),
    "shared-add-lookup-remove": bytes([PF_SHARED | PF_SEND_FD | PF_ACK]) +
    chunk(msg(6, VERSION | NEED_REPLY, UUID), nfds=1, kind=EMPTY_MEMFD) +
    chunk(msg(8, VERSION, UUID)) + chunk(msg(7, VERSION, UUID)),
    "split-header": bytes([PF_CONFIG | PF_ACK]) +
    chunk(config_change[:5], run=True) + chunk(config_change[5:]),
    "two-in-one": bytes([PF_CONFIG | PF_INBAND]) +
    chunk(config_change + msg(4, VERSION, struct.pack("<II", 1, 0))),
    "eof-mid-payload": bytes([PF_INBAND | CLOSE_AFTER]) +
    chunk(msg(4, VERSION, struct.pack("<II", 0, 0))[:15]),
    "fds-without-send-fd": bytes([PF_CONFIG]) + chunk(config_change, nfds=2, kind=EVENTFD),
}



# fuzz-reply-path (layout at the top of fuzz-reply-path.c): the request
# made, fd count and kind, the cut, where the fds ride, the reply bytes.
(R_FEATURES, R_PROTO, R_QUEUE_NUM, R_STATUS, R_SLOTS, R_VRING_BASE, R_CONFIG,
 R_INFLIGHT, R_SHARED, R_OWNER, R_VRING_NUM) = range(11)
ACK_NEGOTIATED, FD_MEMFD, FD_EVENTFD, FD_PIPE, FD_SOCK = 0x80, 0, 1, 2, 3


def rp(which, reply, nfds=0, kind=FD_MEMFD, cut=0xffff, at=0):
    return (bytes([which, nfds | (kind << 2)]) + struct.pack("<HH", cut, at) + reply)


features_reply = msg(1, VERSION | REPLY, u64(1 << 32 | 1 << 30))
reply_paths = {
    "get-features": rp(R_FEATURES, features_reply),
    "get-features-cut-in-header": rp(R_FEATURES, features_reply, cut=7),
    "get-features-cut-in-payload": rp(R_FEATURES, features_reply, cut=15),
    "get-features-stray-fd": rp(R_FEATURES, features_reply, nfds=1, kind=FD_EVENTFD),
    "get-protocol-features": rp(R_PROTO, msg(15, VERSION | REPLY, u64(0x3fff))),
    "get-queue-num": rp(R_QUEUE_NUM, msg(17, VERSION | REPLY, u64(2))),
    "get-status": rp(R_STATUS, msg(40, VERSION | REPLY, u64(0xf))),
    "get-max-mem-slots": rp(R_SLOTS, msg(36, VERSION | REPLY, u64(32))),
    "get-vring-base": rp(R_VRING_BASE, msg(11, VERSION | REPLY, struct.pack("<II", 0, 42))),
    "get-config": rp(R_CONFIG, msg(24, VERSION | REPLY, config(0, bytes(range(16))))),
    "get-inflight-fd": rp(R_INFLIGHT, msg(31, VERSION | REPLY,
                                          struct.pack("<QQHH4x", 4096, 0, 1, 64)), nfds=1),
    "get-inflight-fd-late-fd": rp(R_INFLIGHT, msg(31, VERSION | REPLY,
                                                  struct.pack("<QQHH4x", 4096, 0, 1, 64)),
                                  nfds=1, at=12),
    "get-shared-object": rp(R_SHARED, msg(41, VERSION | REPLY, u64(0)), nfds=1),
    "get-shared-object-two-fds": rp(R_SHARED, msg(41, VERSION | REPLY, u64(0)), nfds=2,
                                    kind=FD_SOCK),
    "set-owner-barrier": rp(R_OWNER, features_reply),
    "set-owner-ack": rp(R_OWNER | ACK_NEGOTIATED, msg(3, VERSION | REPLY, u64(0))),
    "set-vring-num-ack-failed": rp(R_VRING_NUM | ACK_NEGOTIATED,
                                   msg(8, VERSION | REPLY, u64(1))),
}



# fuzz-postcopy-reply (layout at the top of fuzz-postcopy-reply.c): add or
# table and the regions sent less one, the cut, (gpa, size) per region
# sent, the reply while listening (the back-end's own addresses).
def pc(add, sent, reply, cut=0xffff, ack=False):
    b0 = (1 if add else 0) | ((len(sent) - 1) << 1) | (0x80 if ack else 0)
    return (bytes([b0]) + struct.pack("<H", cut) +
            b"".join(struct.pack("<QQ", g, sz) for g, sz in sent) + reply)


def pc_table(regions):
    return struct.pack("<II", len(regions), 0) + b"".join(region(*r) for r in regions)


BE = 0x7e0000000000
two = [(0, 1 << 20), (1 << 30, 1 << 21)]
two_back = [(g, sz, BE + i * (1 << 32), 0) for i, (g, sz) in enumerate(two)]
postcopies = {
    "table-1": pc(False, two[:1], msg(5, VERSION | REPLY, pc_table(two_back[:1]))),
    "table-2": pc(False, two, msg(5, VERSION | REPLY, pc_table(two_back))),
    "table-2-ack": pc(False, two, msg(5, VERSION | REPLY, pc_table(two_back)), ack=True),
    "table-2-our-addresses": pc(False, two, msg(5, VERSION | REPLY, pc_table(
        [(g, sz, 0x7f0000000000 + i * (1 << 32), 0) for i, (g, sz) in enumerate(two)]))),
    "table-nregions-short": pc(False, two, msg(5, VERSION | REPLY, pc_table(two_back[:1]))),
    "table-gpa-differs": pc(False, two, msg(5, VERSION | REPLY, pc_table(
        [two_back[0], (2 << 30,) + two_back[1][1:]]))),
    "table-cut-in-region": pc(False, two, msg(5, VERSION | REPLY, pc_table(two_back)), cut=40),
    "add-mem-reg": pc(True, two[:1], msg(37, VERSION | REPLY, u64(0) + region(*two_back[0]))),
    "add-mem-reg-size-differs": pc(True, two[:1], msg(37, VERSION | REPLY, u64(0) +
                                                      region(0, 1 << 21, BE, 0))),
}



# fuzz-vmm-options (layout at the top of fuzz-vmm-options.c): NUL-separated
# arguments, the first byte of each 1 + the option's index. The command lines
# of the tests and docs.
OPTS = ["-m", "-object", "-machine", "-chardev", "-netdev", "-device", "-workload",
        "-trace", "-qmp", "-incoming", "-summary", "-S", "-x-fill-pattern", "--device"]


def argv(*pairs):
    return b"\0".join(bytes([1 + OPTS.index(o)]) + v.encode() for o, v in pairs)


MEM = ("-object", "memory-backend-memfd,id=mem,size=256M,share=on")
MACH = ("-machine", "memory-backend=mem")
CHR = ("-chardev", "socket,id=c0,path=/tmp/vhost.sock,reconnect-ms=100")
vmm_lines = {
    "blk": argv(MEM, MACH, CHR, ("-device", "vhost-user-blk-pci,chardev=c0,num-queues=2"),
                ("-workload", "blk0:rw=randrw,bs=4k,iodepth=16,ops=5000,verify=on"),
                ("-summary", "json")),
    "net-mq": argv(("-m", "256M"), CHR, ("-netdev", "vhost-user,id=net0,chardev=c0,queues=2"),
                   ("-device", "virtio-net-pci,netdev=net0,mq=on,mac=52:54:00:12:34:56"),
                   ("-workload", "net0:count=100000000,size=64+1518,runtime=3s,drain=1s")),
    "generic": argv(MEM, MACH, ("-chardev", "socket,id=c0,path=/tmp/fs.sock"),
                    ("-device", "vhost-user-device-pci,chardev=c0,virtio-id=26,num_vqs=2"),
                    ("-trace", "vhost_user")),
    "incoming-qmp": argv(MEM, MACH, CHR, ("-device", "vhost-user-blk-pci,chardev=c0"),
                         ("-incoming", "unix:/tmp/mig.sock"),
                         ("-qmp", "unix:/tmp/qmp.sock,server=on,wait=off"), ("-S", "")),
    "server-chardev": argv(("-chardev", "socket,id=c1,path=/tmp/s.sock,server=on,wait=off"),
                           ("--device", "vhost-user-blk-pci,chardev=c1,num-queues=4"),
                           ("-x-fill-pattern", "")),
}



# fuzz-qmp: what a QMP client writes (the tests' sessions; x-fuzz-args is
# the harness's command that reads arguments as the VMM's commands do).
CAPS = b'{"execute":"qmp_capabilities"}\n'
qmp_sessions = {
    "caps-query-commands": CAPS + b'{"execute":"query-commands","id":1}\n',
    "args": CAPS + b'{"execute":"x-fuzz-args","arguments":{"name":"dimm1",'
                   b'"size":"2M","flag":true},"id":"a"}\n',
    "args-int-size": CAPS + b'{"execute":"x-fuzz-args","arguments":{"name":"n",'
                            b'"size":1073741824},"id":[1,{"x":null}]}\n',
    "args-unknown-member": CAPS + b'{"execute":"x-fuzz-args","arguments":{"name":"n",'
                                  b'"bogus":1}}\n',
    "before-caps": b'{"execute":"query-commands"}\n' + CAPS + CAPS,
    "not-found": CAPS + b'{"execute":"device_del","arguments":{"id":"net0"},"id":7}\n',
    "split-values": CAPS + b'{"execute":"x-fuzz-args",  "arguments" : {"name":"\\u00e9\\"q"}}'
                           b'{"execute":"query-commands"}',
    "nested": CAPS + b'[' * 40 + b']' * 40 + b'\n{"execute":1}\n"str"\n',
    "quit": CAPS + b'{"execute":"quit","id":0}\n{"execute":"query-commands"}\n',
}

for target, seeds in (("fuzz-msg-request", requests), ("fuzz-msg-reply", replies),
                      ("fuzz-inflight-take", inflights), ("fuzz-backend-chan", chans),
                      ("fuzz-reply-path", reply_paths),
                      ("fuzz-postcopy-reply", postcopies),
                      ("fuzz-vmm-options", vmm_lines), ("fuzz-qmp", qmp_sessions)):
    d = os.path.join("tests", "fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
