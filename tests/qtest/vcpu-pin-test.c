/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * -vcpu-pin: the VMM's vCPU (workload) thread and its main loop do not
 * share a CPU when the process may use at least 2. A blk workload runs
 * against our reference back-end; while it runs, the CPUs each of the
 * VMM's threads may use are read from /proc/PID/task/TID/status
 * (Cpus_allowed_list): by default the vCPU thread has one CPU and the
 * main loop none of it; with -vcpu-pin off both keep the whole set. With
 * fewer than 2 CPUs nothing may change either way.
 */
#include <sched.h>
#include <string.h>

#include <glib.h>

#include "real-proc.h"

/* "0-3,6" as a bit mask of CPUs below 64 (more is not needed here). */
static uint64_t cpu_mask(const char *list)
{
    g_auto(GStrv) parts = g_strsplit(list, ",", -1);
    uint64_t m = 0;

    for (char **p = parts; *p; p++) {
        char *end;
        unsigned a = (unsigned)g_ascii_strtoull(*p, &end, 10), b = a;

        if (*end == '-') {
            b = (unsigned)g_ascii_strtoull(end + 1, NULL, 10);
        }
        for (unsigned c = a; c <= b && c < 64; c++) {
            m |= 1ull << c;
        }
    }
    return m;
}

/* Thread tid of pid: its Cpus_allowed_list as a mask; 0 if unreadable. */
static uint64_t task_cpus(GPid pid, const char *tid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/task/%s/status", (int)pid, tid);
    g_autofree char *text = NULL, *list = NULL;
    const char *line;

    if (!g_file_get_contents(path, &text, NULL, NULL) ||
        !(line = strstr(text, "Cpus_allowed_list:"))) {
        return 0;
    }
    line += strlen("Cpus_allowed_list:");
    while (*line == ' ' || *line == '\t') {
        line++;
    }
    list = g_strndup(line, strcspn(line, "\n"));
    return cpu_mask(list);
}

/* The VMM's main thread's CPUs and its vCPU thread's (named vcpu-blk0). */
static bool vmm_cpus(GPid pid, uint64_t *main_cpus, uint64_t *vcpu_cpus)
{
    g_autofree char *dir_path = g_strdup_printf("/proc/%d/task", (int)pid);
    g_autofree char *main_tid = g_strdup_printf("%d", (int)pid);
    GDir *dir = g_dir_open(dir_path, 0, NULL);
    const char *tid;

    *vcpu_cpus = 0;
    if (!dir) {
        return false;
    }
    while ((tid = g_dir_read_name(dir))) {
        g_autofree char *comm_path = g_strdup_printf("%s/%s/comm", dir_path, tid);
        g_autofree char *comm = NULL;

        if (g_file_get_contents(comm_path, &comm, NULL, NULL) &&
            g_str_has_prefix(comm, "vcpu-blk0")) {
            *vcpu_cpus = task_cpus(pid, tid);
        }
    }
    g_dir_close(dir);
    *main_cpus = task_cpus(pid, main_tid);
    return *main_cpus && *vcpu_cpus;
}

static void test_pin(Fixture *f, gconstpointer data)
{
    bool pin = GPOINTER_TO_INT(data);
    g_autofree char *sock = g_build_filename(f->dir, "blk.sock", NULL);
    g_autofree char *out_path = g_build_filename(f->dir, "vmm.json", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s", sock);
    g_autofree char *out = NULL, *log = NULL;
    g_autoptr(GPtrArray) a = g_ptr_array_new();
    uint64_t mine = 0, main_cpus, vcpu_cpus;
    cpu_set_t set;
    Proc *vmm;
    int code = -1;

    CPU_ZERO(&set);
    g_assert_cmpint(sched_getaffinity(0, sizeof(set), &set), ==, 0);
    for (unsigned c = 0; c < 64; c++) {
        mine |= CPU_ISSET(c, &set) ? 1ull << c : 0;
    }
    if (!vmm_binary() || !proc_start_ref(f, "ref-blk", "blk", sock, 1, NULL, 0, false)) {
        return;
    }
    g_ptr_array_add(a, (char *)vmm_binary());
    g_ptr_array_add(a, "-chardev");
    g_ptr_array_add(a, chardev);
    g_ptr_array_add(a, "-device");
    g_ptr_array_add(a, "vhost-user-blk-pci,chardev=c0");
    g_ptr_array_add(a, "-workload");
    g_ptr_array_add(a, "blk0:rw=randrw,bs=4k,iodepth=4,runtime=3s");
    g_ptr_array_add(a, "-summary");
    g_ptr_array_add(a, "json");
    if (!pin) {
        g_ptr_array_add(a, "-vcpu-pin");
        g_ptr_array_add(a, "off");
    }
    vmm = proc_spawn(f, "vmm", a, false, out_path);
    /* Printed after the thread is started, born where it runs. */
    if (!vmm || !wait_log(vmm, "blk0: workload started", 1, 20000)) {
        return;
    }
    /*
     * The thread names itself once it runs (GLib does, in the new thread),
     * which on a loaded machine can be after the line above: look again.
     */
    for (int tries = 0; !vmm_cpus(vmm->pid, &main_cpus, &vcpu_cpus) && tries < 200; tries++) {
        g_usleep(10 * 1000);
    }
    if (!vmm_cpus(vmm->pid, &main_cpus, &vcpu_cpus)) {
        g_test_fail_printf("no vcpu-blk0 thread, or its CPUs unreadable");
        return;
    }
    if (pin && __builtin_popcountll(mine) >= 2) {
        if (__builtin_popcountll(vcpu_cpus) != 1 || (vcpu_cpus & main_cpus) ||
            (vcpu_cpus | main_cpus) != mine) {
            g_test_fail_printf("allowed 0x%" G_GINT64_MODIFIER "x: vCPU thread on 0x%"
                               G_GINT64_MODIFIER "x, main loop on 0x%" G_GINT64_MODIFIER
                               "x: one CPU of its own expected", mine, vcpu_cpus,
                               main_cpus);
        }
    } else if (vcpu_cpus != mine || main_cpus != mine) {
        g_test_fail_printf("allowed 0x%" G_GINT64_MODIFIER "x: vCPU thread on 0x%"
                           G_GINT64_MODIFIER "x, main loop on 0x%" G_GINT64_MODIFIER
                           "x: nothing pinned expected", mine, vcpu_cpus, main_cpus);
    }
    if (vmm_collect(vmm, out_path, &code, &out, &log) &&
        (code != 0 || !json_true(out, "verified") ||
         (pin && __builtin_popcountll(mine) >= 2) != !!strstr(log, "vCPU thread on CPU"))) {
        g_test_fail_printf("exit %d, summary %s; stderr:\n%s", code, out ? out : "(none)",
                           log);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/vcpu-pin/default-on", Fixture, GINT_TO_POINTER(true), fixture_setup,
               test_pin, fixture_teardown);
    g_test_add("/vcpu-pin/off", Fixture, GINT_TO_POINTER(false), fixture_setup, test_pin,
               fixture_teardown);
    return g_test_run();
}
