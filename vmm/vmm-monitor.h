/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The QMP monitor of vhost-user-vmm (-qmp unix:PATH,server=on,wait=off).
 *
 * It speaks QEMU's QMP wire protocol on a unix socket, one client at a
 * time: a greeting, capabilities negotiation with qmp_capabilities, then
 * JSON commands {"execute":NAME,"arguments":{...},"id":ANY} answered by
 * {"return":...} or {"error":{"class":...,"desc":...}}, the id echoed;
 * events ({"event":...,"data":...,"timestamp":...}) may come in between.
 * Commands run on the main loop thread, one at a time, so a handler may
 * change guest RAM and talk to the back-ends synchronously.
 *
 * The monitor only knows the protocol and a command table; what a
 * command does is registered by its owner (vmm/vmm-hotplug.c for RAM).
 */
#ifndef VMM_MONITOR_H
#define VMM_MONITOR_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct VmmMonitor VmmMonitor;

/* QMP error classes, as the GError code of the VMM_QMP_ERROR domain. */
#define VMM_QMP_ERROR (vmm_qmp_error_quark())
GQuark vmm_qmp_error_quark(void);

typedef enum VmmQmpErrorClass {
    VMM_QMP_ERROR_GENERIC,              /* "GenericError" */
    VMM_QMP_ERROR_COMMAND_NOT_FOUND,    /* "CommandNotFound" */
    VMM_QMP_ERROR_DEVICE_NOT_FOUND,     /* "DeviceNotFound" */
} VmmQmpErrorClass;

/*
 * A command: args is the "arguments" object (an empty one when absent).
 * Returns the "return" value (a new node; NULL means {}), or false-ish
 * NULL with errp set on failure. The message of errp is the "desc".
 */
typedef JsonNode *(*VmmQmpHandler)(VmmMonitor *mon, JsonObject *args, void *opaque,
                                   GError **errp);

/*
 * Listens on path (a stale socket there is replaced). With wait, blocks
 * until the first client connects, as QEMU does before running the guest.
 * quit is called from the loop when a client sends "quit".
 */
VmmMonitor *vmm_monitor_new(const char *path, bool wait, void (*quit)(void *opaque),
                            void *quit_opaque, GError **errp);
/* Closes the client and the socket and removes the socket file. */
void vmm_monitor_free(VmmMonitor *mon);

/* Adds a command; name must not be registered yet. */
void vmm_monitor_register(VmmMonitor *mon, const char *name, VmmQmpHandler fn,
                          void *opaque);

/*
 * Sends an event to the client after the reply of the command being run
 * (QEMU's order for DEVICE_DELETED); at once outside a command. Takes
 * data (may be NULL). Dropped when no client has negotiated.
 */
void vmm_monitor_event(VmmMonitor *mon, const char *name, JsonObject *data);

/* Wrap a new object / array (the reference is taken over) for a return value. */
JsonNode *vmm_qmp_object_node(JsonObject *o);
JsonNode *vmm_qmp_array_node(JsonArray *a);

/* ---- argument checking for handlers (QEMU's wording) -------------------- */

/* args is empty (the command takes none). */
bool vmm_qmp_no_args(JsonObject *args, GError **errp);
/* Every member of args is in allowed (NULL-terminated). */
bool vmm_qmp_check_args(JsonObject *args, const char *const *allowed, GError **errp);
/* A string member; *out borrowed from args, NULL when absent and optional. */
bool vmm_qmp_arg_str(JsonObject *args, const char *name, bool required,
                     const char **out, GError **errp);
/* An unsigned integer member (or a size string like "2M"); *out unchanged when absent. */
bool vmm_qmp_arg_size(JsonObject *args, const char *name, bool required,
                      uint64_t *out, GError **errp);
/* A boolean member; *out unchanged when absent. */
bool vmm_qmp_arg_bool(JsonObject *args, const char *name, bool *out, GError **errp);

#endif
