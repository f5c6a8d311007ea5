/* A link cut between a master and a slave that run in two network
 * namespaces the test makes (joined by a veth pair): the link set down, or
 * its packets dropped silently (blackhole routes). Neither end gets a
 * reset or an error from the kernel -- only heartbeats can tell. The master
 * must end its task LOST within the tolerance, the slave must free its seat
 * for a master that reaches it over a second link, and once the link is
 * back a new master there works.
 *
 *   nsS (slave, 0.0.0.0) --veth 10.199.1.0/24-- nsM (the master cut off)
 *        \--veth 10.199.2.0/24-- nsN (the master that comes next)
 *
 * Skips with a message where namespaces cannot be made (not root, no `ip`).
 * Every namespace is deleted again, every process stopped by its id. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"

#ifndef SUM_SLAVE_PATH
#error "SUM_SLAVE_PATH must name the sum-slave executable"
#endif
#ifndef MASTER_PROC_PATH
#error "MASTER_PROC_PATH must name the master_proc helper"
#endif

#define IP "/usr/sbin/ip"
#define CHANNEL 63
#define BEAT_MS 200u
#define BEAT_TOL_MS 1000u
#define SLACK_MS 2000u

static char ns_s[32], ns_m[32], ns_n[32];
static bool made;

/* Runs `ip ARGS...` (a command line built from fmt) and says whether it
 * succeeded; its output goes to the test's stderr. */
__attribute__((format(printf, 1, 2))) static bool ip(const char *fmt, ...) {
  char args[512], cmd[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof cmd, IP " %s", args);
  int st = system(cmd);
  return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void teardown(void) {
  tu_proc_kill_all();
  if (!made) return;
  const char *all[] = {ns_s, ns_m, ns_n};
  for (int i = 0; i < 3; i++)
    (void)ip("netns del %s 2>/dev/null", all[i]);
  made = false;
}

/* Makes the three namespaces and the two links, or skips the test. */
static void make_namespaces(void) {
  if (geteuid() != 0 || access(IP, X_OK) != 0)
    cr_skip_test("network namespaces cannot be made here: needs root and iproute2 (" IP ")");
  int id = (int)getpid();
  snprintf(ns_s, sizeof ns_s, "iaS%d", id);
  snprintf(ns_m, sizeof ns_m, "iaM%d", id);
  snprintf(ns_n, sizeof ns_n, "iaN%d", id);
  if (!ip("netns add %s", ns_s)) cr_skip_test("network namespaces cannot be made here: `ip netns add` failed");
  made = true;
  bool ok = ip("netns add %s", ns_m) && ip("netns add %s", ns_n) &&
            ip("link add sa%d netns %s type veth peer name ma%d netns %s", id, ns_s, id, ns_m) &&
            ip("link add sb%d netns %s type veth peer name nb%d netns %s", id, ns_s, id, ns_n) &&
            ip("-n %s addr add 10.199.1.1/24 dev sa%d", ns_s, id) &&
            ip("-n %s addr add 10.199.2.1/24 dev sb%d", ns_s, id) &&
            ip("-n %s addr add 10.199.1.2/24 dev ma%d", ns_m, id) &&
            ip("-n %s addr add 10.199.2.2/24 dev nb%d", ns_n, id) && ip("-n %s link set sa%d up", ns_s, id) &&
            ip("-n %s link set sb%d up", ns_s, id) && ip("-n %s link set ma%d up", ns_m, id) &&
            ip("-n %s link set nb%d up", ns_n, id) && ip("-n %s link set lo up", ns_s);
  cr_assert(ok, "setting up the namespaces and links failed (see stderr)");
}

/* sum-slave in nsS on 0.0.0.0; its port. */
static uint16_t spawn_slave(tu_proc *slave) {
  char channel[16];
  snprintf(channel, sizeof channel, "%u", CHANNEL);
  char *argv[] = {IP,          "netns", "exec",          ns_s, SUM_SLAVE_PATH, "--host", "0.0.0.0", "--port", "0",
                  "--channel", channel, "--heartbeat-ms", "200", "--heartbeat-tolerance-ms", "1000", NULL};
  cr_assert(tu_spawn(slave, argv, "listening on ", TU_WAIT_MS), "sum-slave in %s: %s", ns_s, slave->line);
  const char *colon = strrchr(slave->line, ':');
  cr_assert_not_null(colon, "no port in '%s'", slave->line);
  return (uint16_t)strtoul(colon + 1, NULL, 10);
}

/* master_proc MODE in `ns`, dialling `host`; waits for its first line. */
static void spawn_master(tu_proc *m, const char *ns, const char *mode, const char *host, uint16_t port,
                         const char *ready) {
  char p[8], channel[16], beat[16], tol[16];
  snprintf(p, sizeof p, "%u", port);
  snprintf(channel, sizeof channel, "%u", CHANNEL);
  snprintf(beat, sizeof beat, "%u", BEAT_MS);
  snprintf(tol, sizeof tol, "%u", BEAT_TOL_MS);
  char *argv[] = {IP, "netns", "exec", (char *)ns, MASTER_PROC_PATH, (char *)mode, (char *)host, p, channel,
                  beat, tol,  NULL};
  cr_assert(tu_spawn(m, argv, ready, 10000), "master_proc %s in %s: %s", mode, ns, m->line);
}

/* A master in `ns` dialling `host` runs a Sum: the slave serves it. */
static void assert_master_works(const char *ns, const char *host, uint16_t port) {
  tu_proc m = TU_PROC_INIT;
  spawn_master(&m, ns, "sum", host, port, "");
  /* The first line is the answer: "sum 42" or "error CODE MESSAGE". */
  cr_assert_str_eq(m.line, "sum 42", "a master in %s: %s", ns, m.line);
  tu_proc_kill(&m);
}

typedef bool (*cut_fn)(int id, bool cut);

static bool cut_link_down(int id, bool cut) {
  return ip("-n %s link set ma%d %s", ns_m, id, cut ? "down" : "up");
}

static bool cut_blackhole(int id, bool cut) {
  (void)id;
  const char *verb = cut ? "add" : "del";
  return ip("-n %s route %s blackhole 10.199.1.1/32", ns_m, verb) &&
         ip("-n %s route %s blackhole 10.199.1.2/32", ns_s, verb);
}

static void link_cut(cut_fn cut, const char *how) {
  make_namespaces();
  int id = (int)getpid();
  tu_proc slave = TU_PROC_INIT, holder = TU_PROC_INIT;
  uint16_t port = spawn_slave(&slave);
  spawn_master(&holder, ns_m, "hold", "10.199.1.1", port, "started");

  cr_assert(cut(id, true), "cutting the link (%s) failed", how);
  uint64_t t0 = tu_now_ms();
  cr_assert(tu_proc_read_line(&holder, "ended", BEAT_TOL_MS + BEAT_MS + SLACK_MS + 2000),
            "the cut-off master's task did not end (%s): %s", how, holder.line);
  char status[32] = "";
  int code = 0;
  unsigned long long at = 0;
  cr_assert_eq(sscanf(holder.line, "ended %31s %d %llu", status, &code, &at), 3, "'%s'", holder.line);
  cr_assert_str_eq(status, "LOST", "the task ended %s (%s)", status, holder.line);
  cr_assert_eq(code, IA_CONNECTION_LOST, "code %d", code);
  uint64_t elapsed = at > t0 ? at - t0 : 0;
  cr_log_info("%s: the master's task ended LOST after %llu ms (tolerance %u ms)", how, (unsigned long long)elapsed,
              BEAT_TOL_MS);
  if (!tu_valgrind()) {
    cr_assert_geq(elapsed, BEAT_TOL_MS - BEAT_MS, "LOST after only %llu ms", (unsigned long long)elapsed);
    cr_assert_leq(elapsed, BEAT_TOL_MS + BEAT_MS + SLACK_MS, "LOST only after %llu ms", (unsigned long long)elapsed);
  }

  /* The link is still cut: the slave has to have dropped its silent master
   * by itself to serve one that comes over the other link. */
  uint64_t since = tu_now_ms() - t0;
  if (since < BEAT_TOL_MS + BEAT_MS) tu_sleep_ms((uint32_t)(BEAT_TOL_MS + BEAT_MS - since));
  assert_master_works(ns_n, "10.199.2.1", port);

  cr_assert(cut(id, false), "restoring the link (%s) failed", how);
  assert_master_works(ns_m, "10.199.1.1", port);
  tu_proc_kill(&holder);
  tu_proc_kill(&slave);
}

Test(netns, link_set_down_mid_task_is_noticed_on_both_ends, .timeout = 90, .fini = teardown) {
  link_cut(cut_link_down, "link set down");
}

Test(netns, packets_dropped_silently_mid_task_are_noticed_on_both_ends, .timeout = 90, .fini = teardown) {
  link_cut(cut_blackhole, "blackhole routes");
}
