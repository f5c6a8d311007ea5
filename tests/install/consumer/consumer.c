/*
 * consumer: a slave and a master in one program, built against an installed
 * Interaction only (find_package or pkg-config) with typed stubs generated from
 * greeter.proto. It starts a slave on 127.0.0.1 port 0 that serves
 * consumer.Greeter, connects a master to it, makes a blocking and an async
 * typed call and one that the handler fails on purpose, checks every reply,
 * and exits 0 only if all of them are right. Every wait is bounded.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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

int main(void) {
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
  code = consumer_greeter_serve(slave, &handlers, NULL);
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
