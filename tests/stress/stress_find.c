/*
 * stress_find: ia_master_find() from several threads while the owner of the
 * connection connects, calls and frees it, with no lock of the test's own.
 *
 * ia_master_find() returns a reference of the finder's, dropped with
 * ia_conn_release(): whatever the owner does meanwhile (disconnect, free),
 * the found handle stays valid. (It used to return a borrowed pointer that
 * another thread's ia_conn_free() could free under the finder: ASan saw a
 * heap-use-after-free, TSan a race against free.) Checked: a found
 * connection is named "x" and, while it says it is connected, answers a Sum
 * with the right sum or says the connection went away; the owner's own
 * cycles (connect, Sum, disconnect or not, free) all work; nothing is found
 * once the owner is done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stress.h"

#define CHANNEL 45
#define N_FINDERS 3
#define MAX_CYCLES 5000
#define BUDGET_MS 1000

static uint64_t deadline;
static atomic_bool owner_done;
static atomic_long owner_cycles, found, found_sums, not_found;

typedef struct finder {
  ia_master *m;
  int id;
} finder;

/* Looks "x" up, uses what it finds, and lets go of it. */
static bool find_and_use(ia_master *m, stress_rng *r, int round) {
  ia_conn *c = ia_master_find(m, "x");
  if (c == NULL) {
    atomic_fetch_add(&not_found, 1);
  } else {
    atomic_fetch_add(&found, 1);
    STRESS_CHECK(strcmp(ia_conn_name(c), "x") == 0, "found a connection named '%s' for 'x'", ia_conn_name(c));
    bool up = ia_conn_is_connected(c);
    if (up && round % 4 == 0) {
      /* The owner may free or disconnect it meanwhile: the call then says
       * so with a code, on a handle that is still valid. */
      char why[IA_ERROR_MESSAGE_MAX];
      ia_code rc = stress_call_sum(c, r, round % 8 == 0, why);
      bool gone = rc == IA_CONNECTION_LOST || rc == IA_NOT_CONNECTED || rc == IA_SHUTTING_DOWN;
      if (STRESS_CHECK(rc == IA_OK || gone, "Sum on a found connection: %s: %s", ia_code_name(rc), why) &&
          rc == IA_OK)
        atomic_fetch_add(&found_sums, 1);
    }
    ia_conn_release(c);
  }
  return c != NULL;
}

static void *finder_main(void *arg) {
  finder *f = arg;
  stress_rng r;
  stress_rng_seed(&r, (uint64_t)f->id + 300);
  for (int i = 0; !atomic_load(&owner_done) && stress_before(deadline) && i < MAX_CYCLES * 200; i++)
    if (!find_and_use(f->m, &r, i))
      stress_sleep_us(20); /* between the owner's connections: look again soon */
  return NULL;
}

static void *owner_main(void *arg) {
  ia_master *m = ((void **)arg)[0];
  uint16_t port = *(uint16_t *)((void **)arg)[1];
  stress_rng r;
  stress_rng_seed(&r, 301);
  for (int i = 0; i < MAX_CYCLES && stress_before(deadline); i++) {
    ia_code rc = IA_OK;
    ia_conn *c = stress_connect(m, "x", port, &rc);
    if (!STRESS_CHECK(c != NULL, "owner cycle %d: connect: %s", i, ia_code_name(rc))) break;
    char why[IA_ERROR_MESSAGE_MAX];
    rc = stress_call_sum(c, &r, i % 2 == 0, why);
    STRESS_CHECK(rc == IA_OK, "owner cycle %d: Sum: %s: %s", i, ia_code_name(rc), why);
    if (i % 2 == 0) {
      ia_error err = IA_ERROR_INIT;
      rc = ia_conn_disconnect(c, NULL, 0, TU_WAIT_MS, &err);
      STRESS_CHECK(rc == IA_OK, "owner cycle %d: disconnect: %s: %s", i, ia_code_name(rc), err.message);
      ia_error_clear(&err);
    }
    ia_conn_free(c);
    atomic_fetch_add(&owner_cycles, 1);
  }
  atomic_store(&owner_done, true);
  return NULL;
}

int main(void) {
  stress_begin("stress_find", "ia_master_find from 3 threads while the owner connects, calls and frees", 60);
  ia_slave *s = stress_slave(CHANNEL, 2000);
  ia_master *m = stress_master("stress-find", CHANNEL);
  if (s && m) {
    stress_phase("owner and finders");
    deadline = stress_deadline(BUDGET_MS);
    uint16_t port = ia_slave_port(s);
    void *owner_args[2] = {m, &port};
    finder finders[N_FINDERS];
    pthread_t to, tf[N_FINDERS];
    bool up_o = stress_spawn(&to, owner_main, owner_args);
    bool up_f[N_FINDERS];
    for (int i = 0; i < N_FINDERS; i++) {
      finders[i] = (finder){m, i};
      up_f[i] = stress_spawn(&tf[i], finder_main, &finders[i]);
    }
    uint32_t bound = stress_ms(BUDGET_MS) + stress_ms(20000);
    if (up_o)
      stress_join(to, bound, "the owner");
    else
      atomic_store(&owner_done, true);
    for (int i = 0; i < N_FINDERS; i++)
      if (up_f[i]) stress_join(tf[i], bound, "a finder");
    ia_conn *left = ia_master_find(m, "x");
    STRESS_CHECK(left == NULL, "'x' is still found after its owner freed it");
    ia_conn_release(left);
  }
  stress_report("owner cycles: connect, Sum, (disconnect,) free", atomic_load(&owner_cycles));
  stress_report("lookups that found 'x' (named right)", atomic_load(&found));
  stress_report("lookups that found nothing", atomic_load(&not_found));
  stress_report("Sums on a found connection with the right sum", atomic_load(&found_sums));
  STRESS_CHECK(owner_cycles > 0 && found > 0 && found_sums > 0, "the owner or the finders did nothing");
  ia_master_free(m);
  ia_slave_free(s);
  return stress_end();
}
