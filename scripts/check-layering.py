#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""check-layering.py [SOURCE_ROOT]

Checks the layering of the tree from its `#include "..."` lines.

Layers, bottom to top (a file may include headers of its own layer and of
the layers below, never above):

  util        include/util, util/        error domain, log, message table
  system      include/system, system/    event loop, guest memory
  chardev     include/chardev, chardev/  the socket under a connection
  hw-model    the virtio device model and header-only virtio definitions
              (virtio*.h, virtio.c, vhost-user-backend-req.h): it knows
              nothing of vhost
  hw-core     the vhost-user protocol core: every other hw/virtio file
  hw-devices  the device front-ends (vhost-user-base, -base-migrate, -net, -blk, -device)
  migration   include/migration, migration/
  guest       include/guest, guest/       the userspace guest driver
  top         vmm/, contrib/, examples/, tests/, bench/, scripts/

Two more rules:
  - No cycles among the library's modules (a module is X.c with X.h and
    X-int.h): a module that includes another must not be reached back.
  - The guest driver, the reference VMM and the examples are linked
    against the shared library, so they include only the installed
    headers (the public_headers list of meson.build), their own headers
    and, for the VMM, the guest driver's.

Exit status 1 and one line per violation when any rule is broken.
"""
import collections
import os
import re
import subprocess
import sys

# Known violations, each to be dropped when its cause goes away. Keep this
# short, and say why each edge is here and when it can go.
# Edges the rules would refuse but that are accepted, each with its reason.
ALLOWED_EDGES = set()

LAYERS = ['util', 'system', 'chardev', 'hw-model', 'hw-core', 'hw-devices',
          'migration', 'guest', 'top']
LIBRARY_LAYERS = set(LAYERS[:LAYERS.index('migration') + 1])
PUBLIC_ONLY_DIRS = ('guest/', 'include/guest/', 'vmm/', 'examples/')

HW_MODEL = re.compile(r'^(virtio(-int|-[a-z]+-defs)?|vhost-user-backend-req)$')
HW_DEVICES = re.compile(r'^vhost-user-(base|base-migrate|base-postcopy|net|blk|device)(-int)?$')
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def layer_of(path):
    p = path[len('include/'):] if path.startswith('include/') else path
    top = p.split('/')[0]
    if top in ('util', 'system', 'chardev', 'migration', 'guest'):
        return top
    if p.startswith('hw/'):
        if HW_MODEL.match(stem(p)):
            return 'hw-model'
        if HW_DEVICES.match(stem(p)):
            return 'hw-devices'
        return 'hw-core'
    return 'top'


def module_of(path):
    return re.sub(r'-int$', '', stem(path))


def public_headers(root):
    """The header paths listed in meson.build's public_headers."""
    with open(os.path.join(root, 'meson.build')) as f:
        text = f.read()
    block = re.search(r'^public_headers = \{(.*?)^\}', text, re.S | re.M)
    if not block:
        sys.exit('check-layering: no public_headers list in meson.build')
    return set(re.findall(r"'(include/[^']+\.h)'", block.group(1)))


def source_files():
    """The tracked C files; every C file outside build trees without git."""
    try:
        return subprocess.run(['git', 'ls-files', '*.c', '*.h'], check=True,
                              capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        found = []
        for d, subdirs, names in os.walk('.'):
            subdirs[:] = [s for s in subdirs if not s.startswith(('.', 'build'))]
            found += [os.path.normpath(os.path.join(d, n)) for n in names
                      if n.endswith(('.c', '.h'))]
        return sorted(found)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else '.'
    os.chdir(root)
    files = source_files()
    present = set(files)
    public = public_headers('.')
    errors = []
    used_allowances = set()
    edges = collections.defaultdict(set)    # module -> {(module, file, header)}

    for f in files:
        with open(f, errors='replace') as src:
            lines = src.readlines()
        for n, line in enumerate(lines, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            name = m.group(1)
            local = os.path.normpath(os.path.join(os.path.dirname(f), name))
            if local in present:
                target = local
            elif 'include/' + name in present:
                target = 'include/' + name
            else:
                continue                    # not ours (or generated)
            if (f, target) in ALLOWED_EDGES:
                used_allowances.add((f, target))
                continue
            lf, lt = layer_of(f), layer_of(target)
            if LAYERS.index(lt) > LAYERS.index(lf):
                errors.append(f'{f}:{n}: includes {name} ({lt}) from layer {lf}')
            if (f.startswith(PUBLIC_ONLY_DIRS) and target.startswith('include/') and
                    target not in public and not target.startswith('include/guest/')):
                errors.append(f'{f}:{n}: includes {name}, which is not installed '
                              f'(only public headers here)')
            if lf in LIBRARY_LAYERS and lt in LIBRARY_LAYERS and \
                    module_of(f) != module_of(target):
                edges[module_of(f)].add((module_of(target), f, name))

    errors += cycles(edges)
    for f, target in sorted(ALLOWED_EDGES - used_allowances):
        errors.append(f'{f}: allowed edge to {target} is gone: drop it from '
                      f'ALLOWED_EDGES in {sys.argv[0]}')
    for e in errors:
        print(e)
    if errors:
        print(f'check-layering: {len(errors)} violation(s)', file=sys.stderr)
        return 1
    print(f'check-layering: {len(files)} files, layers and modules in order')
    return 0


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    adj = {m: {t for t, _, _ in out} for m, out in edges.items()}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in adj.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in sorted(adj):
        if v not in index:
            visit(v)
    out = []
    for comp in found:
        detail = sorted(f'{f} -> {h}' for m in comp for t, f, h in edges[m] if t in comp)
        out.append(f'include cycle among modules {", ".join(sorted(comp))}: '
                   + '; '.join(detail))
    return out


if __name__ == '__main__':
    sys.exit(main())
