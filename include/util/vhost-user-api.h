/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the shared library exports. The library is built with
 * -fvisibility=hidden, so a function is reachable from an embedding VMM
 * only when its declaration carries VHOST_USER_API. Everything else stays
 * internal however its header is included: a VMM cannot grow a dependency
 * on the protocol core by accident. The unit tests, which do call internal
 * functions, link a static archive of the same objects instead.
 *
 * scripts/public-api.txt lists every exported symbol; the api-symbols test
 * compares it with the built library and with the annotated declarations.
 */
#ifndef UTIL_VHOST_USER_API_H
#define UTIL_VHOST_USER_API_H

#define VHOST_USER_API __attribute__((visibility("default")))

#endif
