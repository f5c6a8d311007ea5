/*
 * sum-demo: a master that walks through what Interaction does, against one or
 * more running sum-slave processes.
 *
 *   sum-demo --channel C [--heartbeat-ms N] [--heartbeat-tolerance-ms N] [--secret-file PATH]
 *            [--tls-ca PATH] HOST:PORT [HOST:PORT...]
 *
 * It connects to every slave (slave-0, slave-1, ...), then:
 *   1. fans one Sum out to every slave at once (async typed tasks with
 *      callbacks), and makes one blocking typed call;
 *   2. sends a Sum without `b`: the slave fails it on purpose (603) and the
 *      master reads the message and the FailInfo the slave attached;
 *   3. starts a long Sleep on slave-0 and, while it runs, sends a Sum there:
 *      the busy slave refuses it (601), then the Sleep completes;
 *   4. frees the last slave and dials it with the wrong channel (202), then
 *      reconnects it with the right one;
 *   5. disconnects every slave gracefully.
 * Every step checks what it sees; the exit status is 0 only if all did what
 * they should, so the demo doubles as an end-to-end test.
 *
 * Tasks go through the typed stubs generated from sum.proto (sum.ia.h):
 * sum_adder_sum() blocks, sum_adder_sum_task(, NULL)/_start() make an ia_task and
 * sum_adder_sum_reply() decodes its result. No payload is packed by hand.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "interaction/interaction.h"
#include "sum.ia.h"

#define CONNECT_TIMEOUT_MS 5000
#define JOIN_TIMEOUT_MS 10000
#define SLEEP_MS 1500

typedef struct endpoint {
  char host[256];
  uint16_t port;
  char name[32];
  ia_conn *conn;
} endpoint;

static int checks_run;
static int checks_failed;

/* Records one expectation; prints a FAIL line when it does not hold. */
static bool check(bool ok, const char *what) {
  checks_run++;
  if (!ok) {
    checks_failed++;
    printf("    FAIL: %s\n", what);
  }
  return ok;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void print_error(const char *indent, const ia_error *err) {
  printf("%scode %d (%s): %s\n", indent, (int)err->code, ia_code_name(err->code),
         err->message[0] ? err->message : "(no message)");
}

static const ia_call_opts call_opts = {.timeout_ms = JOIN_TIMEOUT_MS};

/* ---- step 1: fan-out ---- */

typedef struct fanout {
  Sum__SumTask req;
  bool decoded;
  int64_t sum;
} fanout;

static atomic_int fanout_completed;

/* Runs on the master's I/O thread when a task completes; it must not block,
 * so it only decodes the result and leaves the printing to main. */
static void on_sum_complete(ia_task *task, void *user) {
  fanout *f = user;
  Sum__SumResult *res = NULL;
  if (sum_adder_sum_reply(task, &res) == IA_OK) {
    f->decoded = res->has_sum;
    f->sum = res->sum;
    sum__sum_result__free_unpacked(res, NULL);
  }
  atomic_fetch_add(&fanout_completed, 1);
}

static void step_fanout(endpoint *eps, int n) {
  printf("\n[1] fan-out: one Sum on each of the %d slave(s) at once (async tasks)\n", n);
  ia_task **tasks = calloc((size_t)n, sizeof *tasks);
  fanout *slots = calloc((size_t)n, sizeof *slots);
  if (tasks == NULL || slots == NULL) {
    check(false, "out of memory");
    free(tasks);
    free(slots);
    return;
  }
  atomic_store(&fanout_completed, 0);
  for (int i = 0; i < n; i++) {
    sum__sum_task__init(&slots[i].req);
    slots[i].req.has_a = slots[i].req.has_b = 1;
    slots[i].req.a = 1000 + i;
    slots[i].req.b = 2000 + 2 * i;
    /* The IDLE form, so the callback is attached before the task can end. */
    tasks[i] = sum_adder_sum_task(eps[i].conn, &slots[i].req, NULL);
    if (!check(tasks[i] != NULL, "sum_adder_sum_task returned a task")) {
      n = i; /* the fan-out goes as far as it got */
      break;
    }
    if (ia_task_on_complete(tasks[i], on_sum_complete, &slots[i]) != IA_OK)
      check(false, "ia_task_on_complete accepted the callback");
  }
  double t0 = now_ms();
  for (int i = 0; i < n; i++)
    if (ia_task_start(tasks[i]) != IA_OK)
      check(false, "ia_task_start sent the task"); /* its status says why */
  check(ia_task_join_all(tasks, (size_t)n, JOIN_TIMEOUT_MS) == IA_OK, "ia_task_join_all returned in time");
  double elapsed = now_ms() - t0;
  for (int i = 0; i < n; i++) {
    ia_status st = ia_task_status(tasks[i]);
    const Sum__SumTask *req = &slots[i].req;
    if (st == IA_STATUS_COMPLETED && slots[i].decoded) {
      printf("    %s: %" PRId64 " + %" PRId64 " = %" PRId64 "\n", eps[i].name, req->a, req->b, slots[i].sum);
      check(slots[i].sum == req->a + req->b, "the sum is right");
    } else {
      printf("    %s: %s\n", eps[i].name, ia_status_name(st));
      if (st != IA_STATUS_COMPLETED) print_error("      ", ia_task_error(tasks[i]));
      check(false, "the task completed with a SumResult");
    }
    ia_task_free(tasks[i]);
  }
  printf("    %d on_complete callback(s) ran; all %d joined in %.1f ms\n", atomic_load(&fanout_completed), n,
         elapsed);
  check(atomic_load(&fanout_completed) == n, "one on_complete callback per task");
  free(tasks);
  free(slots);

  /* The same call, blocking: no task object to manage. */
  Sum__SumTask req = SUM__SUM_TASK__INIT;
  req.has_a = req.has_b = 1;
  req.a = 1;
  req.b = 2;
  Sum__SumResult *res = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code code = sum_adder_sum(eps[0].conn, &req, &res, &call_opts, &err);
  if (code == IA_OK && res->has_sum) {
    printf("    sum_adder_sum on %s (blocking): 1 + 2 = %" PRId64 "\n", eps[0].name, res->sum);
    check(res->sum == 3, "the blocking call's sum is right");
  } else {
    printf("    sum_adder_sum on %s: %s\n", eps[0].name, ia_code_name(code));
    print_error("      ", &err);
    check(false, "the blocking call returned a SumResult");
  }
  if (res != NULL) sum__sum_result__free_unpacked(res, NULL);
  ia_error_clear(&err);
}

/* ---- step 2: a task that fails on purpose ---- */

static void step_task_fail(endpoint *ep) {
  printf("\n[2] a Sum without `b` on %s: the handler fails it on purpose (TaskFail)\n", ep->name);
  Sum__SumTask req = SUM__SUM_TASK__INIT;
  req.has_a = 1;
  req.a = 1;
  ia_task *task = sum_adder_sum_start(ep->conn, &req, NULL);
  if (!check(task != NULL, "sum_adder_sum_start returned a task")) return;
  check(ia_task_join(task, JOIN_TIMEOUT_MS) == IA_OK, "ia_task_join returned in time");
  ia_status st = ia_task_status(task);
  const ia_error *err = ia_task_error(task);
  printf("    status %s\n", ia_status_name(st));
  print_error("    ", err);
  check(st == IA_STATUS_FAILED, "status is FAILED");
  check(err->code == IA_TASK_FAILED, "code is 603 TASK_FAILED");
  check(strcmp(err->message, "A or B not found in task data.") == 0, "the slave's message travelled");
  Sum__SumResult *res = NULL;
  check(sum_adder_sum_reply(task, &res) == IA_TASK_FAILED && res == NULL, "the typed reply says 603 too");

  /* A TaskFail's result is the slave's FailInfo, encoded. */
  ProtobufCMessage *msg = NULL;
  Sum__FailInfo *info = NULL;
  if (ia_pb_decode(&sum__fail_info__descriptor, err->data, err->data_len, &msg) == IA_OK)
    info = (Sum__FailInfo *)msg;
  if (info != NULL && info->message != NULL) {
    printf("    FailInfo.message = \"%s\" (%zu bytes of data)\n", info->message, err->data_len);
    check(strcmp(info->message, "ab not found") == 0, "FailInfo.message is \"ab not found\"");
  } else {
    check(false, "the failure carries a FailInfo");
  }
  if (info != NULL) sum__fail_info__free_unpacked(info, NULL);
  ia_task_free(task);
}

/* ---- step 3: a busy slave refuses a second task ---- */

static void step_busy(endpoint *ep) {
  printf("\n[3] a %d ms Sleep on %s, and a Sum sent to it meanwhile (non-blocking single mode)\n", SLEEP_MS,
         ep->name);
  Sum__SleepTask sleep_req = SUM__SLEEP_TASK__INIT;
  sleep_req.has_ms = 1;
  sleep_req.ms = SLEEP_MS;
  double t0 = now_ms();
  ia_task *sleeper = sum_adder_sleep_start(ep->conn, &sleep_req, NULL);
  if (!check(sleeper != NULL, "sum_adder_sleep_start returned a task")) return;
  printf("    Sleep started: %s\n", ia_status_name(ia_task_status(sleeper)));

  /* Frames on one connection arrive in order, so the Sleep holds the slot by
   * the time the slave reads this Sum. */
  Sum__SumTask req = SUM__SUM_TASK__INIT;
  req.has_a = req.has_b = 1;
  req.a = 5;
  req.b = 6;
  ia_task *extra = sum_adder_sum_start(ep->conn, &req, NULL);
  if (check(extra != NULL, "sum_adder_sum_start returned a task")) {
    check(ia_task_join(extra, JOIN_TIMEOUT_MS) == IA_OK, "ia_task_join returned in time");
    ia_status st = ia_task_status(extra);
    printf("    Sum while busy: %s after %.1f ms\n", ia_status_name(st), now_ms() - t0);
    print_error("      ", ia_task_error(extra));
    check(st == IA_STATUS_START_FAILED, "status is START_FAILED");
    check(ia_task_error(extra)->code == IA_TASK_ALREADY_EXIST, "code is 601 TASK_ALREADY_EXIST");
    ia_task_free(extra);
  }
  check(!ia_status_is_terminal(ia_task_status(sleeper)), "the Sleep is still running");

  check(ia_task_join(sleeper, JOIN_TIMEOUT_MS) == IA_OK, "ia_task_join returned in time");
  ia_status st = ia_task_status(sleeper);
  Sum__SleepResult *res = NULL;
  if (sum_adder_sleep_reply(sleeper, &res) == IA_OK && res->has_slept_ms) {
    printf("    Sleep: %s, slept_ms = %" PRIu32 " (joined after %.1f ms)\n", ia_status_name(st),
           res->slept_ms, now_ms() - t0);
    check(res->slept_ms == SLEEP_MS, "slept_ms is what was asked");
  } else {
    printf("    Sleep: %s\n", ia_status_name(st));
    if (st != IA_STATUS_COMPLETED) print_error("      ", ia_task_error(sleeper));
    check(false, "the Sleep completed with a SleepResult");
  }
  if (res != NULL) sum__sleep_result__free_unpacked(res, NULL);
  ia_task_free(sleeper);
}

/* ---- step 4: channel mismatch ---- */

#define MULTI_SLEEP_MS 300
#define MULTI_MAX 64

/* Every slave that runs several tasks at once gets as many Sleeps at once,
 * and one more: those run side by side (joined in about one Sleep's time),
 * the one more is refused with 601 (non-blocking multi) or waits its turn
 * (blocking multi). */
static void step_multi(endpoint *eps, int n) {
  for (int i = 0; i < n; i++) {
    uint32_t cap = ia_conn_slave_capacity(eps[i].conn), mode = ia_conn_slave_mode(eps[i].conn);
    if (cap < 2 || cap > MULTI_MAX) continue;
    printf("\n[4] %s runs %" PRIu32 " tasks at once (%s): %" PRIu32
           " Sleeps of %d ms at once, and one more\n",
           eps[i].name, cap, ia_mode_name(mode), cap, MULTI_SLEEP_MS);
    Sum__SleepTask req = SUM__SLEEP_TASK__INIT;
    req.has_ms = 1;
    req.ms = MULTI_SLEEP_MS;
    ia_task *t[MULTI_MAX + 1];
    double t0 = now_ms();
    for (uint32_t k = 0; k <= cap; k++)
      t[k] = sum_adder_sleep_start(eps[i].conn, &req, NULL);
    int done = 0;
    for (uint32_t k = 0; k < cap; k++) {
      if (!check(t[k] != NULL, "sum_adder_sleep_start returned a task")) continue;
      check(ia_task_join(t[k], JOIN_TIMEOUT_MS) == IA_OK, "ia_task_join returned in time");
      done += ia_task_status(t[k]) == IA_STATUS_COMPLETED;
    }
    double took = now_ms() - t0;
    printf("    %d of %" PRIu32 " Sleeps completed, all joined after %.1f ms\n", done, cap, took);
    check(done == (int)cap, "every Sleep within the capacity completed");
    check(took < 2 * MULTI_SLEEP_MS, "they ran side by side, not one after another");
    if (check(t[cap] != NULL, "the one more was started")) {
      check(ia_task_join(t[cap], JOIN_TIMEOUT_MS) == IA_OK, "ia_task_join returned in time");
      ia_status st = ia_task_status(t[cap]);
      printf("    the one more: %s %s\n", ia_status_name(st),
             st == IA_STATUS_START_FAILED ? ia_code_name(ia_task_error(t[cap])->code) : "");
      if (mode == IA_MODE_NONBLOCKING_MULTI)
        check(st == IA_STATUS_START_FAILED && ia_task_error(t[cap])->code == IA_TASK_ALREADY_EXIST,
              "refused with 601 TASK_ALREADY_EXIST");
      else
        check(st == IA_STATUS_COMPLETED, "it waited in the queue and ran");
    }
    for (uint32_t k = 0; k <= cap; k++)
      ia_task_free(t[k]);
  }
}

/* The slave's own counters, over the wire (what `interaction stats` and
 * /metrics show): the steps so far, as the slave counted them. */
static void step_stats(endpoint *ep) {
  printf("\n[5] %s's counters (ia_conn_slave_stats; `interaction stats` prints the same)\n", ep->name);
  ia_slave_stats st;
  ia_error err = IA_ERROR_INIT;
  ia_code code = ia_conn_slave_stats(ep->conn, JOIN_TIMEOUT_MS, &st, &err);
  if (!check(code == IA_OK, "the slave sent its counters")) {
    print_error("    ", &err);
    ia_error_clear(&err);
    return;
  }
  uint64_t completed = 0, failed = 0;
  for (size_t i = 0; i < st.n_methods; i++) {
    const ia_method_stats *m = &st.methods[i];
    uint64_t runs = 0;
    for (int k = 0; k <= IA_STATS_BUCKETS; k++)
      runs += m->durations[k];
    if (!runs && !m->tasks[IA_STATS_COMPLETED] && !m->tasks[IA_STATS_FAILED]) continue;
    printf("    %s: %" PRIu64 " completed, %" PRIu64 " failed, ran %" PRIu64 " time(s) for %.1f ms in all\n",
           m->method[0] ? m->method : "(catch-all)", m->tasks[IA_STATS_COMPLETED], m->tasks[IA_STATS_FAILED],
           runs, m->duration_sum_s * 1000.0);
    completed += m->tasks[IA_STATS_COMPLETED];
    failed += m->tasks[IA_STATS_FAILED];
  }
  printf("    refused: %" PRIu64 " busy; %" PRIu32 " connection(s); %" PRIu64 " bytes in, %" PRIu64 " out\n",
         st.refusals[IA_STATS_REFUSED_BUSY], st.connections, st.received_bytes, st.sent_bytes);
  check(failed == 1, "one task failed (step 2)");
  check(completed >= 2, "the fan-out's Sum and the Sleeps completed");
  if (ia_conn_slave_capacity(ep->conn) > 1)
    check(st.refusals[IA_STATS_REFUSED_BUSY] == 1, "one refused busy (step 4)");
  ia_slave_stats_clear(&st);
}

static const char *demo_secret; /* --secret-file, or NULL */
static const char *demo_tls_ca; /* --tls-ca, or NULL */

/* A second master's attempt to connect to ep: refused with `want`? */
static void refused_master(const char *name, uint32_t channel, const char *secret_file, const char *tls_ca,
                           endpoint *ep, ia_code want, const char *what) {
  ia_master_config config;
  ia_master_config_init(&config);
  config.name = name;
  config.channel = channel;
  config.secret_file = secret_file;
  config.tls_ca = tls_ca;
  ia_master *other = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code code = ia_master_new(&config, &other, &err);
  if (code == IA_OK) code = ia_master_start(other, &err);
  if (!check(code == IA_OK, "a second master started")) {
    print_error("    ", &err);
  } else {
    ia_conn *conn = NULL;
    code = ia_master_connect(other, ep->name, ep->host, ep->port, NULL, 0, CONNECT_TIMEOUT_MS, &conn, &err);
    printf("    %s: connect refused: ", name);
    print_error("", &err);
    check(code == want && err.code == want, what);
    check(conn == NULL || code == IA_OK, "no connection after a refusal");
    if (code == IA_OK) ia_conn_free(conn);
  }
  ia_master_free(other);
  ia_error_clear(&err);
}

/* A file holding a secret that is not the demo's, in $TMPDIR (else /tmp);
 * its path in `path`. The caller unlinks it. */
static bool wrong_secret(char path[256]) {
  const char *dir = getenv("TMPDIR");
  snprintf(path, 256, "%s/sum-demo-wrong-secret-XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkstemp(path);
  if (fd < 0) return false;
  bool ok = write(fd, "not the secret\n", 15) == 15;
  close(fd);
  return ok;
}

static void step_channel(ia_master *master, uint32_t channel, endpoint *ep) {
  uint32_t wrong = channel + 1;
  printf("\n[6] %s is freed, then dialled by a master on channel %" PRIu32 " (the slave's is %" PRIu32
         ")%s\n",
         ep->name, wrong, channel, demo_tls_ca ? ", one without TLS" : "");
  if (demo_secret) printf("    and one without the secret and one with a wrong one\n");
  ia_error err = IA_ERROR_INIT;
  ia_code code = ia_conn_disconnect(ep->conn, NULL, 0, CONNECT_TIMEOUT_MS, &err);
  check(code == IA_OK, "ia_conn_disconnect succeeded");
  ia_conn_free(ep->conn);
  ep->conn = NULL;
  ia_error_clear(&err);

  refused_master("sum-demo-wrong-channel", wrong, demo_secret, demo_tls_ca, ep, IA_CHANNEL_INVALID,
                 "code is 202 CHANNEL_INVALID");
  if (demo_tls_ca)
    refused_master("sum-demo-plaintext", channel, demo_secret, NULL, ep, IA_TOKEN_NOT_FOUND,
                   "code is 301 TOKEN_NOT_FOUND: the slave requires TLS");
  char wrong_file[256];
  if (demo_secret && check(wrong_secret(wrong_file), "a file with a wrong secret was written")) {
    unsetenv("IA_SECRET"); /* "without the secret" means none at all */
    refused_master("sum-demo-no-secret", channel, NULL, demo_tls_ca, ep, IA_TOKEN_NOT_FOUND,
                   "code is 301 TOKEN_NOT_FOUND");
    refused_master("sum-demo-wrong-secret", channel, wrong_file, demo_tls_ca, ep, IA_TOKEN_INVALID,
                   "code is 302 TOKEN_INVALID");
    unlink(wrong_file);
  }

  /* The slave is free again for a master on the right channel. */
  code =
      ia_master_connect(master, ep->name, ep->host, ep->port, NULL, 0, CONNECT_TIMEOUT_MS, &ep->conn, &err);
  if (check(code == IA_OK, "reconnecting on the right channel succeeded")) {
    printf("    reconnected %s on channel %" PRIu32 "%s\n", ep->name, channel,
           demo_secret ? ", proving the secret" : "");
  } else {
    print_error("    ", &err);
    ep->conn = NULL;
  }
  ia_error_clear(&err);
}

/* ---- step 5: graceful disconnect ---- */

static void step_disconnect(endpoint *eps, int n) {
  printf("\n[7] disconnecting every slave\n");
  for (int i = 0; i < n; i++) {
    if (eps[i].conn == NULL) continue;
    ia_error err = IA_ERROR_INIT;
    ia_code code = ia_conn_disconnect(eps[i].conn, NULL, 0, CONNECT_TIMEOUT_MS, &err);
    if (check(code == IA_OK, "ia_conn_disconnect succeeded")) {
      printf("    %s disconnected (connected: %s)\n", eps[i].name,
             ia_conn_is_connected(eps[i].conn) ? "yes" : "no");
      check(!ia_conn_is_connected(eps[i].conn), "the connection reports itself down");
    } else {
      printf("    %s: ", eps[i].name);
      print_error("", &err);
    }
    ia_error_clear(&err);
  }
}

/* ---- main ---- */

static void usage(FILE *out) {
  fprintf(out,
          "usage: sum-demo --channel C [--heartbeat-ms N] [--heartbeat-tolerance-ms N]\n"
          "                [--secret-file PATH] [--tls-ca PATH] HOST:PORT [HOST:PORT...]\n"
          "\n"
          "Connects to every sum-slave given (all on channel C) and walks through\n"
          "fan-out, TaskFail, a busy slave, the slaves that run several tasks at\n"
          "once, a channel mismatch and disconnection.\n"
          "Exits 0 only if every step behaved as expected.\n"
          "\n"
          "  --heartbeat-ms N            the heartbeat interval proposed to each slave;\n"
          "                              0 turns heartbeats off (default %u)\n"
          "  --heartbeat-tolerance-ms N  a slave silent this long is lost; 0 turns\n"
          "                              heartbeats off (default %u)\n"
          "  --secret-file PATH          prove the slaves' shared secret, read from PATH\n"
          "                              (default: IA_SECRET if it is set, else none);\n"
          "                              step 6 then shows masters without it refused\n"
          "  --tls-ca PATH               connect with TLS, verifying each slave's\n"
          "                              certificate against this CA (PEM) and its HOST;\n"
          "                              step 6 then shows a master without TLS refused\n",
          IA_HEARTBEAT_DEFAULT_MS, IA_HEARTBEAT_TOLERANCE_DEFAULT_MS);
}

int main(int argc, char **argv) {
  static const struct option options[] = {
      {"channel", required_argument, NULL, 'c'},
      {"heartbeat-ms", required_argument, NULL, 'b'},
      {"heartbeat-tolerance-ms", required_argument, NULL, 't'},
      {"secret-file", required_argument, NULL, 's'},
      {"tls-ca", required_argument, NULL, 'a'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  /* Show each step as it happens, even when stdout is a pipe or a file. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  unsigned long channel = 0, beat_ms = IA_HEARTBEAT_DEFAULT_MS, beat_tol = IA_HEARTBEAT_TOLERANCE_DEFAULT_MS;
  bool have_channel = false;
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    if (opt == 'h') {
      usage(stdout);
      return 0;
    }
    if (opt == 's' || opt == 'a') {
      *(opt == 's' ? &demo_secret : &demo_tls_ca) = optarg;
      continue;
    }
    unsigned long *into = opt == 'c' ? &channel : opt == 'b' ? &beat_ms : opt == 't' ? &beat_tol : NULL;
    if (into == NULL || !ia_parse_uint(optarg, UINT32_MAX, into)) {
      if (into != NULL) fprintf(stderr, "sum-demo: invalid value '%s'\n", optarg);
      usage(stderr);
      return 2;
    }
    have_channel |= opt == 'c';
  }
  int n = argc - optind;
  if (!have_channel || n < 1) {
    usage(stderr);
    return 2;
  }
  endpoint *eps = calloc((size_t)n, sizeof *eps);
  if (eps == NULL) {
    fprintf(stderr, "sum-demo: out of memory\n");
    return 1;
  }
  for (int i = 0; i < n; i++) {
    if (!ia_hostport_parse(argv[optind + i], eps[i].host, sizeof eps[i].host, &eps[i].port)) {
      fprintf(stderr, "sum-demo: '%s' is not HOST:PORT\n", argv[optind + i]);
      usage(stderr);
      free(eps);
      return 2;
    }
    snprintf(eps[i].name, sizeof eps[i].name, "slave-%d", i);
  }

  ia_master_config config;
  ia_master_config_init(&config);
  config.name = "sum-demo";
  config.channel = (uint32_t)channel;
  config.heartbeat_ms = (uint32_t)beat_ms;
  config.heartbeat_tolerance_ms = (uint32_t)beat_tol;
  config.secret_file = demo_secret;
  config.tls_ca = demo_tls_ca;
  ia_master *master = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code code = ia_master_new(&config, &master, &err);
  if (code == IA_OK) code = ia_master_start(master, &err);
  if (code != IA_OK) {
    fprintf(stderr, "sum-demo: cannot start the master: %s (%s)\n", ia_strerror(code), err.message);
    ia_error_clear(&err);
    ia_master_free(master);
    free(eps);
    return 1;
  }

  printf("[0] connecting to %d slave(s) on channel %lu%s\n", n, channel,
         demo_tls_ca ? ", with TLS (each slave's certificate verified)" : "");
  bool all_connected = true;
  for (int i = 0; i < n; i++) {
    code = ia_master_connect(master, eps[i].name, eps[i].host, eps[i].port, NULL, 0, CONNECT_TIMEOUT_MS,
                             &eps[i].conn, &err);
    if (check(code == IA_OK, "connected")) {
      printf("    %s: connected to %s:%" PRIu16 " (%s, %s, %" PRIu32 " at once)\n", eps[i].name, eps[i].host,
             eps[i].port, ia_conn_slave_name(eps[i].conn), ia_mode_name(ia_conn_slave_mode(eps[i].conn)),
             ia_conn_slave_capacity(eps[i].conn));
    } else {
      printf("    %s: cannot connect to %s:%" PRIu16 ": ", eps[i].name, eps[i].host, eps[i].port);
      print_error("", &err);
      eps[i].conn = NULL;
      all_connected = false;
    }
    ia_error_clear(&err);
  }

  if (all_connected) {
    step_fanout(eps, n);
    step_task_fail(&eps[n - 1]);
    step_busy(&eps[0]);
    step_multi(eps, n);
    step_stats(&eps[n - 1]);
    step_channel(master, (uint32_t)channel, &eps[n - 1]);
  }
  step_disconnect(eps, n);

  for (int i = 0; i < n; i++)
    ia_conn_free(eps[i].conn);
  ia_master_free(master);
  free(eps);

  if (checks_failed == 0) {
    printf("\nsum-demo: all %d checks passed\n", checks_run);
    return 0;
  }
  printf("\nsum-demo: %d of %d checks FAILED\n", checks_failed, checks_run);
  return 1;
}
