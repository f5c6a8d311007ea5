/*
 * consumer: a slave and a master in one program, built against an installed
 * Interaction only (find_package or pkg-config) with typed stubs generated from
 * greeter.proto, clock.proto and alarm.proto (the last two made of protobuf's
 * well-known types). It starts a slave on 127.0.0.1 port 0 that serves
 * consumer.Greeter, consumer.Clock and consumer.Alarms, connects a master to
 * it, makes a blocking and an async typed call and one that the handler fails
 * on purpose, calls with google.protobuf.Empty, Timestamp and Duration in the
 * requests and replies, checks every reply, and exits 0 only if all of them
 * are right. Every wait is bounded.
 *
 *   consumer              the above
 *   consumer --hello PORT only a master connecting to 127.0.0.1:PORT, for
 *                         tests/install/hello_check.py to read its Hello
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alarm.ia.h"
#include "clock.ia.h"
#include "greeter.ia.h"
#include "interaction/interaction.h"

#define CHANNEL 42
#define WAIT_MS 5000

static int failures;

static void check(bool ok, const char *what) {
  if (!ok) {
    failures++;
    printf("consumer: FAIL: %s\n", what);
  }
}

/* Greet: "hello, NAME" and the total of the numbers; no name is a TaskFail
 * carrying a GreetFail. */
static void greet(ia_task_ctx *task, const Consumer__Greeting *req, void *user) {
  (void)user;
  if (req->name == NULL || req->name[0] == '\0') {
    Consumer__GreetFail why = CONSUMER__GREET_FAIL__INIT;
    why.why = "no name";
    /* Ending a task fails only without memory or with an outcome already;
     * the master hears of the task either way. */
    if (ia_pb_fail(task, IA_TASK_FAILED, "whom should I greet?", &why.base) != IA_OK)
      printf("consumer: could not fail the task\n");
    return;
  }
  char text[128];
  snprintf(text, sizeof text, "hello, %s", req->name);
  Consumer__Greeted out = CONSUMER__GREETED__INIT;
  out.text = text;
  out.has_total = 1;
  for (size_t i = 0; i < req->n_numbers; i++)
    out.total += req->numbers[i];
  if (consumer_greeter_greet_reply_ok(task, &out) != IA_OK) printf("consumer: could not reply\n");
}

/* The slave's handler table: one handler per method of consumer.Greeter. */
static const consumer_greeter_handlers handlers = {.greet = greet};

/* Clock.Now: the slave's time, a google.protobuf.Timestamp. */
static void now(ia_task_ctx *task, const Google__Protobuf__Empty *req, void *user) {
  (void)req;
  (void)user;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  Google__Protobuf__Timestamp out = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  out.seconds = ts.tv_sec;
  out.nanos = (int32_t)ts.tv_nsec;
  if (consumer_clock_now_reply_ok(task, &out) != IA_OK) printf("consumer: could not reply\n");
}

static const consumer_clock_handlers clock_handlers = {.now = now};

/* The one alarm Alarms.Set keeps and Alarms.Next gives back. The master's
 * calls are blocking and one at a time, so the two handlers never overlap. */
typedef struct alarm_state {
  Google__Protobuf__Duration after;
  char label[32];
} alarm_state;

static void set_alarm(ia_task_ctx *task, const Consumer__Alarm *req, void *user) {
  alarm_state *state = user;
  Google__Protobuf__Duration none = GOOGLE__PROTOBUF__DURATION__INIT;
  state->after = req->after != NULL ? *req->after : none;
  snprintf(state->label, sizeof state->label, "%s", req->label != NULL ? req->label : "");
  Google__Protobuf__Empty out = GOOGLE__PROTOBUF__EMPTY__INIT;
  if (consumer_alarms_set_reply_ok(task, &out) != IA_OK) printf("consumer: could not reply\n");
}

static void next_alarm(ia_task_ctx *task, const Google__Protobuf__Empty *req, void *user) {
  (void)req;
  alarm_state *state = user;
  Consumer__Alarm out = CONSUMER__ALARM__INIT;
  out.after = &state->after;
  out.label = state->label;
  if (consumer_alarms_next_reply_ok(task, &out) != IA_OK) printf("consumer: could not reply\n");
}

static const consumer_alarms_handlers alarm_handlers = {.set = set_alarm, .next = next_alarm};

static void print_error(const char *what, ia_code code, const ia_error *err) {
  printf("consumer: %s: %s (%s)\n", what, ia_strerror(code), err->message);
}

/* The calls, on a connected master. */
static void run_calls(ia_conn *conn) {
  int32_t numbers[] = {1, 2, 3, 4};
  Consumer__Greeting req = CONSUMER__GREETING__INIT;
  req.name = "consumer";
  req.n_numbers = 4;
  req.numbers = numbers;
  const ia_call_opts opts = {.timeout_ms = WAIT_MS};

  /* Blocking. */
  Consumer__Greeted *reply = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code code = consumer_greeter_greet(conn, &req, &reply, &opts, &err);
  if (code == IA_OK) {
    printf("consumer: blocking call: \"%s\", total %" PRId64 "\n", reply->text, reply->total);
    check(strcmp(reply->text, "hello, consumer") == 0, "the blocking reply's text");
    check(reply->total == 10, "the blocking reply's total");
    consumer__greeted__free_unpacked(reply, NULL);
  } else {
    print_error("blocking call", code, &err);
    check(false, "the blocking call completed");
  }
  ia_error_clear(&err);

  /* Async: a started task, joined, its reply decoded. */
  numbers[3] = 40;
  ia_task *task = consumer_greeter_greet_start(conn, &req, NULL);
  check(task != NULL, "the async call made a task");
  if (task != NULL) {
    check(ia_task_join(task, WAIT_MS) == IA_OK, "the task ended in time");
    reply = NULL;
    code = consumer_greeter_greet_reply(task, &reply);
    if (code == IA_OK) {
      printf("consumer: async call: \"%s\", total %" PRId64 "\n", reply->text, reply->total);
      check(reply->total == 46, "the async reply's total");
      consumer__greeted__free_unpacked(reply, NULL);
    } else {
      print_error("async call", code, ia_task_error(task));
      check(false, "the async call completed");
    }
    ia_task_free(task);
  }

  /* A failure on purpose: code, message and the typed result travel. */
  req.name = NULL;
  reply = NULL;
  code = consumer_greeter_greet(conn, &req, &reply, &opts, &err);
  check(code == IA_TASK_FAILED && reply == NULL, "a greeting without a name fails with 603");
  check(strcmp(err.message, "whom should I greet?") == 0, "the failure's message");
  ProtobufCMessage *msg = NULL;
  if (ia_pb_decode(&consumer__greet_fail__descriptor, err.data, err.data_len, &msg) == IA_OK) {
    Consumer__GreetFail *why = (Consumer__GreetFail *)msg;
    printf("consumer: failed call: %s, \"%s\", GreetFail.why \"%s\"\n", ia_code_name(code), err.message,
           why->why != NULL ? why->why : "");
    check(why->why != NULL && strcmp(why->why, "no name") == 0, "the failure's GreetFail");
    consumer__greet_fail__free_unpacked(why, NULL);
  } else {
    check(false, "the failure carries a GreetFail");
  }
  ia_error_clear(&err);
}

/* Calls with well-known types in the requests and the replies. */
static void run_well_known_calls(ia_conn *conn) {
  const ia_call_opts opts = {.timeout_ms = WAIT_MS};
  ia_error err = IA_ERROR_INIT;
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;

  Google__Protobuf__Timestamp *stamp = NULL;
  ia_code code = consumer_clock_now(conn, &empty, &stamp, &opts, &err);
  if (code == IA_OK) {
    long long skew = (long long)stamp->seconds - (long long)time(NULL);
    printf("consumer: Clock.Now: %" PRId64 ".%09" PRId32 "\n", stamp->seconds, stamp->nanos);
    check(skew >= -60 && skew <= 60, "Clock.Now's Timestamp is about now");
    google__protobuf__timestamp__free_unpacked(stamp, NULL);
  } else {
    print_error("Clock.Now", code, &err);
    check(false, "Clock.Now completed");
  }
  ia_error_clear(&err);

  Google__Protobuf__Duration after = GOOGLE__PROTOBUF__DURATION__INIT;
  after.seconds = 90;
  after.nanos = 5;
  Consumer__Alarm alarm = CONSUMER__ALARM__INIT;
  alarm.after = &after;
  alarm.label = "tea";
  Google__Protobuf__Empty *done = NULL;
  code = consumer_alarms_set(conn, &alarm, &done, &opts, &err);
  check(code == IA_OK && done != NULL, "Alarms.Set replied with an Empty");
  if (done != NULL) google__protobuf__empty__free_unpacked(done, NULL);
  ia_error_clear(&err);

  Consumer__Alarm *next = NULL;
  code = consumer_alarms_next(conn, &empty, &next, &opts, &err);
  if (code == IA_OK) {
    bool same = next->after != NULL && next->after->seconds == 90 && next->after->nanos == 5 &&
                next->label != NULL && strcmp(next->label, "tea") == 0;
    printf("consumer: Alarms.Next: \"%s\" after %" PRId64 " s\n", next->label != NULL ? next->label : "",
           next->after != NULL ? next->after->seconds : 0);
    check(same, "Alarms.Next gives back the Duration and label set");
    consumer__alarm__free_unpacked(next, NULL);
  } else {
    print_error("Alarms.Next", code, &err);
    check(false, "Alarms.Next completed");
  }
  ia_error_clear(&err);
}

/* --hello PORT: a master's handshake with whatever listens on PORT, which is
 * expected to hang up after reading the Hello; the outcome is printed, never
 * failed on. */
static int send_hello(const char *port_text) {
  char *end;
  unsigned long port = strtoul(port_text, &end, 10);
  if (*end != '\0' || port == 0 || port > 65535) {
    printf("consumer: --hello needs a port, not '%s'\n", port_text);
    return 2;
  }
  ia_error err = IA_ERROR_INIT;
  ia_master_config mc;
  ia_master_config_init(&mc);
  mc.name = "consumer-master";
  mc.channel = CHANNEL;
  ia_master *master = NULL;
  ia_conn *conn = NULL;
  ia_code code = ia_master_new(&mc, &master, &err);
  if (code == IA_OK) code = ia_master_start(master, &err);
  if (code == IA_OK)
    code = ia_master_connect(master, "hello", "127.0.0.1", (uint16_t)port, NULL, 0, WAIT_MS, &conn, &err);
  printf("consumer: --hello %lu: %s (%s)\n", port, ia_code_name(code), err.message);
  ia_error_clear(&err);
  ia_conn_free(conn);
  ia_master_free(master);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--hello") == 0) return send_hello(argv[2]);
  if (argc != 1) {
    printf("usage: consumer [--hello PORT]\n");
    return 2;
  }
  ia_error err = IA_ERROR_INIT;
  ia_slave_config sc;
  ia_slave_config_init(&sc);
  sc.host = "127.0.0.1";
  sc.port = 0;
  sc.channel = CHANNEL;
  sc.name = "consumer-slave";
  ia_slave *slave = NULL;
  ia_master *master = NULL;
  ia_conn *conn = NULL;

  ia_code code = ia_slave_new(&sc, &slave, &err);
  if (code != IA_OK) goto fail;
  alarm_state alarms = {.label = ""};
  code = consumer_greeter_serve(slave, &handlers, NULL);
  if (code == IA_OK) code = consumer_clock_serve(slave, &clock_handlers, NULL);
  if (code == IA_OK) code = consumer_alarms_serve(slave, &alarm_handlers, &alarms);
  if (code != IA_OK) goto fail;
  code = ia_slave_start(slave, &err);
  if (code != IA_OK) goto fail;
  printf("consumer: slave listening on 127.0.0.1:%u\n", (unsigned)ia_slave_port(slave));

  ia_master_config mc;
  ia_master_config_init(&mc);
  mc.name = "consumer-master";
  mc.channel = CHANNEL;
  code = ia_master_new(&mc, &master, &err);
  if (code != IA_OK) goto fail;
  code = ia_master_start(master, &err);
  if (code != IA_OK) goto fail;
  code =
      ia_master_connect(master, "greeter", "127.0.0.1", ia_slave_port(slave), NULL, 0, WAIT_MS, &conn, &err);
  if (code != IA_OK) goto fail;

  run_calls(conn);
  run_well_known_calls(conn);

  code = ia_conn_disconnect(conn, NULL, 0, WAIT_MS, &err);
  check(code == IA_OK, "the master disconnected gracefully");
  ia_error_clear(&err);
  ia_conn_free(conn);
  ia_master_free(master);
  ia_slave_free(slave);
  if (failures != 0) {
    printf("consumer: %d check(s) FAILED\n", failures);
    return 1;
  }
  printf("consumer: OK\n");
  return 0;

fail:
  print_error("setup failed", code, &err);
  ia_error_clear(&err);
  ia_conn_free(conn);
  ia_master_free(master);
  ia_slave_free(slave);
  return 1;
}
