/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user wire format: the message header, every payload layout, the
 * feature bits, and the single message table that drives encoding,
 * validation, trace output and the generated documentation.
 *
 * Everything here is shared by the front-end library, the test back-end
 * in tests/qtest and the reference back-end in contrib/, so that there is
 * exactly one description of the protocol in the tree.
 *
 * All multi-byte fields are in the host's (little-endian) byte order, as
 * the protocol mandates for a back-end on the same host.
 */
#ifndef UTIL_VHOST_USER_PROTO_H
#define UTIL_VHOST_USER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Header --------------------------------------------------------- */

#define VHOST_USER_VERSION          0x1u
#define VHOST_USER_VERSION_MASK     0x3u
#define VHOST_USER_REPLY_MASK       (1u << 2)
#define VHOST_USER_NEED_REPLY_MASK  (1u << 3)
/* Bits the front-end may legitimately see in a reply's flags. */
#define VHOST_USER_FLAGS_KNOWN_MASK \
    (VHOST_USER_VERSION_MASK | VHOST_USER_REPLY_MASK | VHOST_USER_NEED_REPLY_MASK)

/* At most this many fds ride along with one message (either direction). */
#define VHOST_USER_MAX_FDS          8
/* SET_MEM_TABLE carries at most this many regions. */
#define VHOST_MEMORY_BASELINE_NREGIONS 8
/* GET_CONFIG / SET_CONFIG payloads carry at most this many config bytes. */
#define VHOST_USER_MAX_CONFIG_SIZE  256
/*
 * Largest payload we ever accept from a peer. Anything larger is rejected
 * before a single payload byte is read (DPDK once trusted this field).
 */
#define VHOST_USER_MAX_PAYLOAD_SIZE 4096

typedef struct __attribute__((packed)) VhostUserHeader {
    uint32_t request;
    uint32_t flags;
    uint32_t size;              /* payload bytes that follow */
} VhostUserHeader;

/* ---- Payloads ------------------------------------------------------- */

/* SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE, SET_VRING_ENABLE, ... */
typedef struct __attribute__((packed)) VhostUserVringState {
    uint32_t index;
    uint32_t num;
} VhostUserVringState;

#define VHOST_VRING_F_LOG           0   /* bit in VhostUserVringAddr.flags */

typedef struct __attribute__((packed)) VhostUserVringAddr {
    uint32_t index;
    uint32_t flags;
    uint64_t desc_user_addr;    /* front-end virtual addresses ... */
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr;    /* ... except this one: a guest physical address */
} VhostUserVringAddr;

typedef struct __attribute__((packed)) VhostUserMemoryRegion {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
} VhostUserMemoryRegion;

typedef struct __attribute__((packed)) VhostUserMemory {
    uint32_t nregions;
    uint32_t padding;
    VhostUserMemoryRegion regions[VHOST_MEMORY_BASELINE_NREGIONS];
} VhostUserMemory;

/* ADD_MEM_REG / REM_MEM_REG */
typedef struct __attribute__((packed)) VhostUserMemRegMsg {
    uint64_t padding;
    VhostUserMemoryRegion region;
} VhostUserMemRegMsg;

typedef struct __attribute__((packed)) VhostUserLog {
    uint64_t mmap_size;
    uint64_t mmap_offset;
} VhostUserLog;

/* IOTLB message, laid out as Linux's struct vhost_iotlb_msg (32 bytes). */
#define VHOST_IOTLB_MISS            1
#define VHOST_IOTLB_UPDATE          2
#define VHOST_IOTLB_INVALIDATE      3
#define VHOST_IOTLB_ACCESS_FAIL     4
#define VHOST_ACCESS_RO             0x1
#define VHOST_ACCESS_WO             0x2
#define VHOST_ACCESS_RW             0x3
typedef struct __attribute__((packed)) VhostUserIotlb {
    uint64_t iova;
    uint64_t size;
    uint64_t uaddr;
    uint8_t perm;
    uint8_t type;
    uint8_t padding[6];
} VhostUserIotlb;

#define VHOST_SET_CONFIG_TYPE_FRONTEND  0
#define VHOST_SET_CONFIG_TYPE_MIGRATION 1
typedef struct __attribute__((packed)) VhostUserConfig {
    uint32_t offset;
    uint32_t size;
    uint32_t flags;
    uint8_t region[VHOST_USER_MAX_CONFIG_SIZE];
} VhostUserConfig;
#define VHOST_USER_CONFIG_HDR_SIZE  offsetof(VhostUserConfig, region)

/* Back-end's VRING_HOST_NOTIFIER_MSG payload. */
typedef struct __attribute__((packed)) VhostUserVringArea {
    uint64_t u64;               /* bits 0-7 ring index, bit 8 no fd */
    uint64_t size;
    uint64_t offset;
} VhostUserVringArea;

typedef struct __attribute__((packed)) VhostUserInflight {
    uint64_t mmap_size;
    uint64_t mmap_offset;
    uint16_t num_queues;
    uint16_t queue_size;
    uint8_t padding[4];         /* peers use the naturally aligned size, 24 */
} VhostUserInflight;

typedef struct __attribute__((packed)) VhostUserShared {
    uint8_t uuid[16];
} VhostUserShared;

typedef struct __attribute__((packed)) VhostUserTransferDeviceState {
    uint32_t direction;         /* 0 save, 1 load */
    uint32_t phase;             /* 0 stopped */
} VhostUserTransferDeviceState;

/* SET_VRING_KICK/CALL/ERR and VRING_KICK/CALL/ERR u64 layout */
#define VHOST_USER_VRING_IDX_MASK   0xffu
#define VHOST_USER_VRING_NOFD_MASK  (1u << 8)

typedef union VhostUserPayload {
    uint64_t u64;
    VhostUserVringState state;
    VhostUserVringAddr addr;
    VhostUserMemory memory;
    VhostUserMemRegMsg mem_reg;
    VhostUserLog log;
    VhostUserIotlb iotlb;
    VhostUserConfig config;
    VhostUserVringArea area;
    VhostUserInflight inflight;
    VhostUserShared object;
    VhostUserTransferDeviceState transfer_state;
    uint8_t raw[VHOST_USER_MAX_PAYLOAD_SIZE];
} VhostUserPayload;

typedef struct __attribute__((packed)) VhostUserMsg {
    VhostUserHeader hdr;
    VhostUserPayload payload;
} VhostUserMsg;

/* ---- Feature bits --------------------------------------------------- */

/* Device (virtio) feature bits the protocol itself cares about. */
#define VIRTIO_F_NOTIFY_ON_EMPTY        24
#define VHOST_F_LOG_ALL                 26
#define VIRTIO_F_ANY_LAYOUT             27
#define VIRTIO_RING_F_INDIRECT_DESC     28
#define VIRTIO_RING_F_EVENT_IDX         29
#define VHOST_USER_F_PROTOCOL_FEATURES  30
#define VIRTIO_F_VERSION_1              32
#define VIRTIO_F_IOMMU_PLATFORM         33
#define VIRTIO_F_RING_PACKED            34
#define VIRTIO_F_IN_ORDER               35

/* X(name, bit) */
#define VHOST_USER_PROTOCOL_FEATURES(X) \
    X(MQ, 0)                    \
    X(LOG_SHMFD, 1)             \
    X(RARP, 2)                  \
    X(REPLY_ACK, 3)             \
    X(NET_MTU, 4)               \
    X(BACKEND_REQ, 5)           \
    X(CROSS_ENDIAN, 6)          \
    X(CRYPTO_SESSION, 7)        \
    X(PAGEFAULT, 8)             \
    X(CONFIG, 9)                \
    X(BACKEND_SEND_FD, 10)      \
    X(HOST_NOTIFIER, 11)        \
    X(INFLIGHT_SHMFD, 12)       \
    X(RESET_DEVICE, 13)         \
    X(INBAND_NOTIFICATIONS, 14) \
    X(CONFIGURE_MEM_SLOTS, 15)  \
    X(STATUS, 16)               \
    X(XEN_MMAP, 17)             \
    X(SHARED_OBJECT, 18)        \
    X(DEVICE_STATE, 19)

enum {
#define VHOST_USER_PF_ENUM(name, bit) VHOST_USER_PROTOCOL_F_##name = bit,
    VHOST_USER_PROTOCOL_FEATURES(VHOST_USER_PF_ENUM)
#undef VHOST_USER_PF_ENUM
    VHOST_USER_PROTOCOL_F_MAX
};

/* ---- The message table ---------------------------------------------- */

/* Payload layouts: each has one size rule, see vhost_user_payload_info. */
typedef enum VhostUserPayloadKind {
    VHOST_USER_PL_NONE,         /* size 0 */
    VHOST_USER_PL_U64,          /* 8 */
    VHOST_USER_PL_U64_OPT,      /* 0 or 8: SET_LOG_BASE replies differ by back-end */
    VHOST_USER_PL_VRING_STATE,  /* 8 */
    VHOST_USER_PL_VRING_ADDR,   /* 40 */
    VHOST_USER_PL_MEM_TABLE,    /* 8 + nregions * 32, nregions 1..8 */
    VHOST_USER_PL_MEM_REG,      /* 40 */
    VHOST_USER_PL_LOG,          /* 16 */
    VHOST_USER_PL_IOTLB,        /* 32 */
    VHOST_USER_PL_CONFIG,       /* 12 + size, size <= 256 */
    VHOST_USER_PL_VRING_AREA,   /* 24 */
    VHOST_USER_PL_INFLIGHT,     /* 24 */
    VHOST_USER_PL_UUID,         /* 16 */
    VHOST_USER_PL_DEVICE_STATE, /* 8 */
    VHOST_USER_PL_OPAQUE,       /* unvalidated bytes (crypto sessions) */
    VHOST_USER_PL__MAX
} VhostUserPayloadKind;

/* Which fds ride with the request. */
typedef enum VhostUserFdRule {
    VHOST_USER_FDS_NONE,        /* never */
    VHOST_USER_FDS_ONE,         /* exactly one */
    VHOST_USER_FDS_VRING,       /* one unless the u64 NOFD bit is set */
    VHOST_USER_FDS_PER_REGION,  /* one per memory region */
    VHOST_USER_FDS_OPTIONAL,    /* zero or one */
} VhostUserFdRule;

/* What the peer sends back. */
typedef enum VhostUserReplyKind {
    VHOST_USER_RK_NONE,         /* nothing; a u64 ack if NEED_REPLY was set */
    /*
     * Always answered, NEED_REPLY or not: a u64 status (IOTLB_MSG; the
     * back-end's SHARED_OBJECT_LOOKUP, whose answer may carry the fd).
     */
    VHOST_USER_RK_ACK,
    VHOST_USER_RK_PAYLOAD,      /* a reply with reply_payload */
    /*
     * A reply with reply_payload while the row's reply condition holds;
     * otherwise as NONE.
     */
    VHOST_USER_RK_COND,
} VhostUserReplyKind;

/* When a VHOST_USER_RK_COND request has its reply (column "rcond"). */
typedef enum VhostUserReplyCond {
    VHOST_USER_RC_NONE,                 /* not conditional */
    VHOST_USER_RC_LOG_SHMFD,            /* protocol feature LOG_SHMFD negotiated */
    /*
     * Postcopy is listening (POSTCOPY_LISTEN sent): the back-end answers
     * with the addresses it mapped the regions at, for userfaultfd.
     */
    VHOST_USER_RC_POSTCOPY_LISTENING,
} VhostUserReplyCond;

/*
 * The semantic check of a reply against its request (column "check"),
 * after the size and fd rules: what the table's layouts cannot say.
 */
typedef enum VhostUserReplyCheck {
    VHOST_USER_RCHK_NONE,
    VHOST_USER_RCHK_VRING_INDEX,        /* the ring index asked about, echoed */
    VHOST_USER_RCHK_CONFIG_RANGE,       /* offset and size asked for, echoed */
} VhostUserReplyCheck;

/*
 * How long the answer to a request may take (column "wait"), which picks
 * the request's reply timeout (the chardev's reply-timeout-ms or its
 * longer timeout). While a request waits, the VMM's event loop may be
 * held, so only replies with a reason to take time are "slow".
 */
typedef enum VhostUserReplyWait {
    /*
     * The spec has the receiver answer at once: a value it holds
     * (GET_FEATURES, GET_CONFIG), or an ack of a setting it records.
     */
    VHOST_USER_RW_PROMPT,
    /*
     * The answer waits for work: a ring to stop with requests in flight
     * (GET_VRING_BASE), guest memory to map, pin or register for DMA or
     * userfaultfd (SET_MEM_TABLE, ADD/REM_MEM_REG, POSTCOPY_*), a device
     * to reset (RESET_*, SET_STATUS), device state to be transferred
     * (SET_DEVICE_STATE_FD, CHECK_DEVICE_STATE), a crypto session to be
     * made by hardware.
     */
    VHOST_USER_RW_SLOW,
} VhostUserReplyWait;

typedef enum VhostUserScope {
    VHOST_USER_SCOPE_DEVICE,    /* concerns the whole device: sent once */
    VHOST_USER_SCOPE_RING,      /* concerns one ring: sent per ring */
} VhostUserScope;

/* Gate: a protocol feature bit, or one of these. */
#define VHOST_USER_GATE_NONE        (-1)
/* Needs VHOST_USER_F_PROTOCOL_FEATURES offered by the back-end. */
#define VHOST_USER_GATE_PROTO       (-2)

/*
 * Front-end to back-end requests.
 * X(name, id, payload, fds, reply, reply_payload, reply_fds, rcond, check,
 *   gate, scope, handler, wait)
 * rcond: VhostUserReplyCond; check: VhostUserReplyCheck; wait:
 * VhostUserReplyWait, how long the receiver may take to answer. handler is a bare
 * token naming whoever handles the request on the receiving side: this
 * file never expands it into a function (it is shared with contrib and the
 * tests); the back-end channel (hw/virtio/vhost-user-backend-chan.c) turns
 * the back-end rows' tokens into its own function table. Front-end rows
 * have "none": the handlers are the back-end's business.
 */
#define VHOST_USER_FRONTEND_MESSAGES(X) \
    X(GET_FEATURES,           1, NONE,        NONE,       PAYLOAD, U64,         NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, DEVICE, none, PROMPT) \
    X(SET_FEATURES,           2, U64,         NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, DEVICE, none, PROMPT) \
    X(SET_OWNER,              3, NONE,        NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, DEVICE, none, PROMPT) \
    X(RESET_OWNER,            4, NONE,        NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, DEVICE, none, SLOW) \
    X(SET_MEM_TABLE,          5, MEM_TABLE,   PER_REGION, COND,    MEM_TABLE,   NONE,     POSTCOPY_LISTENING, NONE,        VHOST_USER_GATE_NONE, DEVICE, none, SLOW) \
    X(SET_LOG_BASE,           6, LOG,         ONE,        COND,    U64_OPT,     NONE,     LOG_SHMFD,          NONE,        VHOST_USER_GATE_NONE, DEVICE, none, PROMPT) \
    X(SET_LOG_FD,             7, NONE,        ONE,        NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, DEVICE, none, PROMPT) \
    X(SET_VRING_NUM,          8, VRING_STATE, NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, RING, none, PROMPT)   \
    X(SET_VRING_ADDR,         9, VRING_ADDR,  NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, RING, none, PROMPT)   \
    X(SET_VRING_BASE,        10, VRING_STATE, NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, RING, none, PROMPT)   \
    X(GET_VRING_BASE,        11, VRING_STATE, NONE,       PAYLOAD, VRING_STATE, NONE,     NONE,               VRING_INDEX, VHOST_USER_GATE_NONE, RING, none, SLOW)   \
    X(SET_VRING_KICK,        12, U64,         VRING,      NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, RING, none, PROMPT)   \
    X(SET_VRING_CALL,        13, U64,         VRING,      NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, RING, none, PROMPT)   \
    X(SET_VRING_ERR,         14, U64,         VRING,      NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, RING, none, PROMPT)   \
    X(GET_PROTOCOL_FEATURES, 15, NONE,        NONE,       PAYLOAD, U64,         NONE,     NONE,               NONE,        VHOST_USER_GATE_PROTO, DEVICE, none, PROMPT) \
    X(SET_PROTOCOL_FEATURES, 16, U64,         NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_PROTO, DEVICE, none, PROMPT) \
    X(GET_QUEUE_NUM,         17, NONE,        NONE,       PAYLOAD, U64,         NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_MQ, DEVICE, none, PROMPT) \
    X(SET_VRING_ENABLE,      18, VRING_STATE, NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_PROTO, RING, none, PROMPT)  \
    X(SEND_RARP,             19, U64,         NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_RARP, DEVICE, none, PROMPT) \
    X(NET_SET_MTU,           20, U64,         NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_NET_MTU, DEVICE, none, PROMPT) \
    X(SET_BACKEND_REQ_FD,    21, NONE,        ONE,        NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_BACKEND_REQ, DEVICE, none, PROMPT) \
    X(IOTLB_MSG,             22, IOTLB,       NONE,       ACK,     U64,         NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, DEVICE, none, PROMPT) \
    X(SET_VRING_ENDIAN,      23, VRING_STATE, NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_CROSS_ENDIAN, RING, none, PROMPT) \
    X(GET_CONFIG,            24, CONFIG,      NONE,       PAYLOAD, CONFIG,      NONE,     NONE,               CONFIG_RANGE, VHOST_USER_PROTOCOL_F_CONFIG, DEVICE, none, PROMPT) \
    X(SET_CONFIG,            25, CONFIG,      NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_CONFIG, DEVICE, none, PROMPT) \
    X(CREATE_CRYPTO_SESSION, 26, OPAQUE,      NONE,       PAYLOAD, OPAQUE,      NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_CRYPTO_SESSION, DEVICE, none, SLOW) \
    X(CLOSE_CRYPTO_SESSION,  27, U64,         NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_CRYPTO_SESSION, DEVICE, none, PROMPT) \
    X(POSTCOPY_ADVISE,       28, NONE,        NONE,       PAYLOAD, NONE,        ONE,      NONE,               NONE,        VHOST_USER_PROTOCOL_F_PAGEFAULT, DEVICE, none, SLOW) \
    X(POSTCOPY_LISTEN,       29, NONE,        NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_PAGEFAULT, DEVICE, none, SLOW) \
    X(POSTCOPY_END,          30, NONE,        NONE,       PAYLOAD, U64,         NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_PAGEFAULT, DEVICE, none, SLOW) \
    X(GET_INFLIGHT_FD,       31, INFLIGHT,    NONE,       PAYLOAD, INFLIGHT,    OPTIONAL, NONE,               NONE,        VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, DEVICE, none, PROMPT) \
    X(SET_INFLIGHT_FD,       32, INFLIGHT,    ONE,        NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, DEVICE, none, PROMPT) \
    X(GPU_SET_SOCKET,        33, NONE,        ONE,        NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, DEVICE, none, PROMPT) \
    X(RESET_DEVICE,          34, NONE,        NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_RESET_DEVICE, DEVICE, none, SLOW) \
    X(VRING_KICK,            35, VRING_STATE, NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS, RING, none, PROMPT) \
    X(GET_MAX_MEM_SLOTS,     36, NONE,        NONE,       PAYLOAD, U64,         NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, DEVICE, none, PROMPT) \
    X(ADD_MEM_REG,           37, MEM_REG,     ONE,        COND,    MEM_REG,     NONE,     POSTCOPY_LISTENING, NONE,        VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, DEVICE, none, SLOW) \
    X(REM_MEM_REG,           38, MEM_REG,     NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, DEVICE, none, SLOW) \
    X(SET_STATUS,            39, U64,         NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_STATUS, DEVICE, none, SLOW) \
    X(GET_STATUS,            40, NONE,        NONE,       PAYLOAD, U64,         NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_STATUS, DEVICE, none, PROMPT) \
    X(GET_SHARED_OBJECT,     41, UUID,        NONE,       PAYLOAD, U64,         OPTIONAL, NONE,               NONE,        VHOST_USER_PROTOCOL_F_SHARED_OBJECT, DEVICE, none, PROMPT) \
    X(SET_DEVICE_STATE_FD,   42, DEVICE_STATE, ONE,        PAYLOAD, U64,         OPTIONAL, NONE,               NONE,        VHOST_USER_PROTOCOL_F_DEVICE_STATE, DEVICE, none, SLOW) \
    X(CHECK_DEVICE_STATE,    43, NONE,        NONE,       PAYLOAD, U64,         NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_DEVICE_STATE, DEVICE, none, SLOW)

/*
 * Back-end to front-end requests, on the back-end channel.
 * Same columns; "reply" is what the front-end sends back.
 */
#define VHOST_USER_BACKEND_MESSAGES(X) \
    X(IOTLB_MSG,               1, IOTLB,       NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_GATE_NONE, DEVICE, iotlb, PROMPT) \
    X(CONFIG_CHANGE_MSG,       2, NONE,        NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_CONFIG, DEVICE, config_change, PROMPT) \
    X(VRING_HOST_NOTIFIER_MSG, 3, VRING_AREA,  VRING,      NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_HOST_NOTIFIER, RING, host_notifier, PROMPT) \
    X(VRING_CALL,              4, VRING_STATE, NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS, RING, vring_call, PROMPT) \
    X(VRING_ERR,               5, VRING_STATE, NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS, RING, vring_err, PROMPT) \
    X(SHARED_OBJECT_ADD,       6, UUID,        OPTIONAL,   NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_SHARED_OBJECT, DEVICE, shared_add, PROMPT) \
    X(SHARED_OBJECT_REMOVE,    7, UUID,        NONE,       NONE,    NONE,        NONE,     NONE,               NONE,        VHOST_USER_PROTOCOL_F_SHARED_OBJECT, DEVICE, shared_remove, PROMPT) \
    X(SHARED_OBJECT_LOOKUP,    8, UUID,        NONE,       ACK,     U64,         OPTIONAL, NONE,               NONE,        VHOST_USER_PROTOCOL_F_SHARED_OBJECT, DEVICE, shared_lookup, PROMPT)

typedef enum VhostUserRequest {
    VHOST_USER_NONE = 0,
#define VHOST_USER_REQ_ENUM(name, id, ...) VHOST_USER_##name = id,
    VHOST_USER_FRONTEND_MESSAGES(VHOST_USER_REQ_ENUM)
    VHOST_USER_MAX
} VhostUserRequest;

typedef enum VhostUserBackendRequest {
    VHOST_USER_BACKEND_NONE = 0,
#define VHOST_USER_BACKEND_REQ_ENUM(name, id, ...) VHOST_USER_BACKEND_##name = id,
    VHOST_USER_BACKEND_MESSAGES(VHOST_USER_BACKEND_REQ_ENUM)
#undef VHOST_USER_BACKEND_REQ_ENUM
    VHOST_USER_BACKEND_MAX
} VhostUserBackendRequest;
#undef VHOST_USER_REQ_ENUM

/* One row of the table, as data. */
typedef struct VhostUserMsgInfo {
    const char *name;           /* "SET_VRING_NUM" */
    uint32_t id;
    VhostUserPayloadKind payload;
    VhostUserFdRule fds;
    VhostUserReplyKind reply;
    VhostUserPayloadKind reply_payload;
    VhostUserFdRule reply_fds;
    VhostUserReplyCond reply_cond;      /* for VHOST_USER_RK_COND */
    VhostUserReplyCheck reply_check;
    int gate;                   /* protocol feature bit or VHOST_USER_GATE_* */
    VhostUserScope scope;
    const char *handler;        /* the handler token, as text (docs, trace) */
    VhostUserReplyWait reply_wait;
} VhostUserMsgInfo;

/* ---- Compile-time checks of the wire layout against the spec --------- */

_Static_assert(sizeof(VhostUserHeader) == 12, "header is 12 bytes");
_Static_assert(sizeof(VhostUserVringState) == 8, "vring state");
_Static_assert(sizeof(VhostUserVringAddr) == 40, "vring address");
_Static_assert(offsetof(VhostUserVringAddr, used_user_addr) == 16, "used after desc");
_Static_assert(offsetof(VhostUserVringAddr, log_guest_addr) == 32, "log last");
_Static_assert(sizeof(VhostUserMemoryRegion) == 32, "memory region");
_Static_assert(offsetof(VhostUserMemory, regions) == 8, "regions after count+pad");
_Static_assert(sizeof(VhostUserMemory) == 8 + 8 * 32, "memory table");
_Static_assert(sizeof(VhostUserMemRegMsg) == 40, "single memory region");
_Static_assert(sizeof(VhostUserLog) == 16, "log description");
_Static_assert(sizeof(VhostUserIotlb) == 32, "iotlb message");
_Static_assert(offsetof(VhostUserIotlb, perm) == 24, "iotlb perm");
_Static_assert(offsetof(VhostUserIotlb, type) == 25, "iotlb type");
_Static_assert(VHOST_USER_CONFIG_HDR_SIZE == 12, "config header");
_Static_assert(sizeof(VhostUserVringArea) == 24, "vring area");
_Static_assert(sizeof(VhostUserInflight) == 24, "inflight description");
_Static_assert(offsetof(VhostUserInflight, num_queues) == 16, "inflight queues");
_Static_assert(sizeof(VhostUserShared) == 16, "shared object uuid");
_Static_assert(sizeof(VhostUserTransferDeviceState) == 8, "device state");
_Static_assert(offsetof(VhostUserMsg, payload) == 12, "payload right after header");
_Static_assert(VHOST_USER_MAX == 44, "front-end ids 1..43");
_Static_assert(VHOST_USER_BACKEND_MAX == 9, "back-end ids 1..8");

#endif
