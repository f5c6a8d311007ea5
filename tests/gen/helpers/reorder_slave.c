/*
 * gen_reorder_slave: serves ia.reorder.Calc with stubs generated from
 * tests/gen/reorder_b/reorder.proto, whose methods are in another order than
 * the master's (reorder_a). gen_test_reorder spawns it.
 *
 *   gen_reorder_slave --host H --port P --channel C
 *
 * Prints `listening on H:P` once it accepts connections, serves until SIGINT
 * or SIGTERM, then exits 0.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reorder.ia.h"

/* Ending a fresh task cannot fail; if it did, the master would see it. */
static void ended(ia_code rc) {
  if (rc != IA_OK) fprintf(stderr, "gen_reorder_slave: ending a task: %s\n", ia_strerror(rc));
}

static void add(ia_task_ctx *task, const Ia__Reorder__Pair *req, void *user) {
  (void)user;
  Ia__Reorder__Num num = IA__REORDER__NUM__INIT;
  num.has_value = 1;
  num.value = req->a + req->b;
  ended(ia_reorder_calc_add_reply_ok(task, &num));
}

static void mul(ia_task_ctx *task, const Ia__Reorder__Pair *req, void *user) {
  (void)user;
  Ia__Reorder__Num num = IA__REORDER__NUM__INIT;
  num.has_value = 1;
  num.value = req->a * req->b;
  ended(ia_reorder_calc_mul_reply_ok(task, &num));
}

static void neg(ia_task_ctx *task, const Ia__Reorder__Num *req, void *user) {
  (void)user;
  Ia__Reorder__Num num = IA__REORDER__NUM__INIT;
  num.has_value = 1;
  num.value = -req->value;
  ended(ia_reorder_calc_neg_reply_ok(task, &num));
}

static void describe(ia_task_ctx *task, const Ia__Reorder__Num *req, void *user) {
  (void)user;
  char text[32];
  snprintf(text, sizeof text, "%" PRId64, req->value);
  Ia__Reorder__Text reply = IA__REORDER__TEXT__INIT;
  reply.text = text;
  ended(ia_reorder_calc_describe_reply_ok(task, &reply));
}

static int fail(const char *what, ia_code code, const ia_error *err) {
  fprintf(stderr, "gen_reorder_slave: %s: %s (%s)\n", what, ia_strerror(code), err->message);
  return 1;
}

int main(int argc, char **argv) {
  ia_slave_config config;
  ia_slave_config_init(&config);
  config.name = "reorder-slave";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--host") == 0) {
      config.host = argv[i + 1];
    } else if (strcmp(argv[i], "--port") == 0) {
      config.port = (uint16_t)strtoul(argv[i + 1], NULL, 10);
    } else if (strcmp(argv[i], "--channel") == 0) {
      config.channel = (uint32_t)strtoul(argv[i + 1], NULL, 10);
    } else {
      fprintf(stderr, "usage: gen_reorder_slave --host H --port P --channel C\n");
      return 2;
    }
  }

  /* SIGTERM may come as soon as the port is printed, before ia_slave_run()
   * takes the signals: blocked from here on, it waits for it. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  ia_error err = IA_ERROR_INIT;
  ia_slave *slave = NULL;
  ia_code rc = ia_slave_new(&config, &slave, &err);
  if (rc != IA_OK) return fail("new", rc, &err);
  /* Designated initialisers: the table does not depend on member order. */
  const ia_reorder_calc_handlers handlers = {.add = add, .mul = mul, .neg = neg, .describe = describe};
  rc = ia_reorder_calc_serve(slave, &handlers, NULL);
  if (rc == IA_OK) rc = ia_slave_start(slave, &err);
  if (rc != IA_OK) {
    ia_slave_free(slave);
    return fail("start", rc, &err);
  }
  printf("listening on %s:%u\n", config.host != NULL ? config.host : "127.0.0.1", ia_slave_port(slave));
  fflush(stdout);
  rc = ia_slave_run(slave, &err);
  ia_slave_free(slave);
  if (rc != IA_OK) return fail("run", rc, &err);
  return 0;
}
