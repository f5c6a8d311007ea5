/* ia_master_find() hands out a reference of its own (released with
 * ia_conn_release(), which never closes the connection), so that a thread
 * that found a connection can use it while another thread frees its handle.
 * Written against that API (fix A); see the report of the regress branch
 * for the variant run on 468917a, whose find returned a borrowed pointer. */
#include <stdatomic.h>
#include <string.h>

#include "fixture.h"

#define CHANNEL 137
#define ROUNDS 200
#define HOLD_US 200

typedef struct finder {
  ia_master *m;
  atomic_bool stop;
  atomic_int found; /* finds that returned the connection */
  atomic_int wrong; /* ... whose name was not "slave" */
} finder;

/* Waits `us` microseconds asleep: a spinning finder would hold valgrind's
 * one running thread and starve the others. */
static void spin_us(uint64_t us) {
  struct timespec t = {0, (long)us * 1000L};
  nanosleep(&t, NULL);
}

/* Finds "slave" over and over, holds it a little, uses it, releases it. */
static void *finder_main(void *arg) {
  finder *f = arg;
  uint64_t deadline = tu_now_ms() + 60000;
  while (!atomic_load(&f->stop) && tu_now_ms() < deadline) {
    ia_conn *c = ia_master_find(f->m, "slave");
    if (c == NULL) {
      spin_us(20);
      continue;
    }
    atomic_fetch_add(&f->found, 1);
    spin_us(HOLD_US); /* meanwhile the main thread may free its handle */
    if (strcmp(ia_conn_name(c), "slave") != 0) atomic_fetch_add(&f->wrong, 1);
    (void)ia_conn_is_connected(c);
    ia_conn_release(c);
  }
  return NULL;
}

/* Defect 12j (fix A): ia_master_find() returned a borrowed pointer that
 * another thread's ia_conn_free() could free under the caller: a thread
 * that found a connection and read its name or state while the owner
 * closed it read freed memory (ASan: heap-use-after-free). With a reference
 * of its own, the found connection stays valid until released, and its
 * name is still its name. */
Test(find_ref, a_found_connection_stays_valid_while_its_owner_frees_it, .timeout = 60) {
  ia_slave *s = fixture_slave(CHANNEL);
  finder f = {0};
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("finder", CHANNEL, &f.m, &err), &err);
  pthread_t thread;
  cr_assert_eq(pthread_create(&thread, NULL, finder_main, &f), 0);
  for (int round = 0; round < ROUNDS; round++) {
    ia_conn *conn = NULL;
    TU_ASSERT_OK(tu_connect(f.m, "slave", ia_slave_port(s), &conn, &err), &err);
    int before = atomic_load(&f.found);
    uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
    while (atomic_load(&f.found) == before && tu_now_ms() < deadline)
      tu_sleep_ms(1);
    cr_assert_gt(atomic_load(&f.found), before, "round %d: the finder never found the connection", round);
    /* Graceful, so that the slave is free for the next round at once. */
    TU_ASSERT_OK(ia_conn_disconnect(conn, NULL, 0, TU_WAIT_MS, &err), &err);
    ia_conn_free(conn); /* the finder may hold it right now */
  }
  atomic_store(&f.stop, true);
  pthread_join(thread, NULL);
  cr_assert_eq(atomic_load(&f.wrong), 0, "a found connection had another name");
  cr_assert_null(tu_found(f.m, "slave"), "a freed connection is still found");
  ia_master_free(f.m);
  ia_slave_free(s);
}
