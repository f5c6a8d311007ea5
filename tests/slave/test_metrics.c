/* The slave's statistics: after a scripted sequence of tasks -- completed,
 * failed, cancelled, past their deadline, refused busy, by the hook and for
 * an unknown method -- ia_slave_stats_get() and the scraped /metrics (read
 * by Prometheus's own text parser, Debian's python3-prometheus-client) hold
 * exactly the expected numbers; /healthz says 200 while the slave serves and
 * 503 once it shuts down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"
#include "tu_http.h"
#include "sum.pb-c.h"
#include "sum_handlers.h"

#ifndef PARSE_METRICS_PATH
#error "PARSE_METRICS_PATH must name tests/helpers/parse_metrics.py"
#endif

#define CHANNEL 93

static bool deny_marked(const ia_task_ctx *task, ia_hook_reply *reply, void *user) {
  (void)reply;
  (void)user;
  return ia_task_ctx_metadata(task, "deny") == NULL;
}

static ia_slave *metered_slave(uint32_t grace_ms) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.handler = NULL; /* only the sum methods: anything else is 606 */
  config.before_task = deny_marked;
  config.metrics_addr = "127.0.0.1:0";
  config.grace_ms = grace_ms;
  ia_slave *s = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_slave_new(&config, &s, &err), &err);
  cr_assert_eq(sum_serve(s), IA_OK);
  TU_ASSERT_OK(ia_slave_start(s, &err), &err);
  cr_assert_neq(ia_slave_metrics_port(s), 0, "no metrics port");
  return s;
}


static ia_task *sleep_task(ia_conn *conn, uint32_t ms) {
  ia_task *t = tu_sleep_task_new(conn, ms);
  cr_assert_not_null(t);
  return t;
}

Test(metrics, a_scripted_sequence_is_counted_exactly_by_the_api_and_on_metrics, .timeout = 60) {
  ia_slave *s = metered_slave(100);
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start("metered", CHANNEL, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "slave", ia_slave_port(s), &conn, &err), &err);

  for (int i = 0; i < 3; i++) /* 3 Sums completed */
    assert_sum_works(conn, i, 1);
  assert_sum_without_b_fails(conn); /* 1 failed */
  /* 1 refused: unknown method */
  void *reply = NULL;
  size_t reply_len = 0;
  cr_assert_eq(ia_call(conn, "no.Such/Thing", "", 0, &reply, &reply_len, TU_WAIT_MS, &err),
               IA_UNKNOWN_METHOD);
  ia_error_clear(&err);
  /* 1 refused by the hook */
  ia_task *denied = tu_sum_task_new(conn, 1, 2);
  cr_assert_not_null(denied);
  cr_assert_eq(ia_task_add_metadata(denied, "deny", "yes"), IA_OK);
  cr_assert_eq(ia_task_start(denied), IA_OK);
  cr_assert_eq(ia_task_join(denied, TU_WAIT_MS), IA_OK);
  cr_assert_eq(ia_task_error(denied)->code, IA_TASK_REFUSED);
  ia_task_free(denied);
  /* 1 Sleep cancelled, and 1 Sum refused busy meanwhile */
  ia_task *sl = sleep_task(conn, 5000);
  cr_assert_eq(ia_task_start(sl), IA_OK);
  cr_assert_eq(tu_wait_status(sl, IA_STATUS_STARTED, TU_WAIT_MS), IA_STATUS_STARTED);
  int64_t sum = 0;
  cr_assert_eq(tu_call_sum(conn, 1, 2, &sum, &err), IA_TASK_ALREADY_EXIST);
  ia_error_clear(&err);
  cr_assert_eq(ia_task_cancel(sl), IA_OK);
  cr_assert_eq(ia_task_join(sl, TU_WAIT_MS), IA_OK);
  TU_ASSERT_STATUS(sl, IA_STATUS_CANCELLED);
  ia_task_free(sl);
  /* 1 Sleep past its deadline */
  ia_task *late = sleep_task(conn, 5000);
  cr_assert_eq(ia_task_set_deadline(late, 100), IA_OK);
  cr_assert_eq(ia_task_start(late), IA_OK);
  cr_assert_eq(ia_task_join(late, TU_WAIT_MS), IA_OK);
  ia_task_free(late);
  /* The slave answers 607 when it stops the Sleep; the master may have
   * ended it first: wait until the slave has counted it. */
  ia_slave_stats st;
  uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
  for (;;) {
    cr_assert_eq(ia_slave_stats_get(s, &st), IA_OK);
    if (st.methods[1].tasks[IA_STATS_DEADLINE_EXCEEDED] == 1 || tu_now_ms() > deadline) break;
    ia_slave_stats_clear(&st);
    tu_sleep_ms(10);
  }

  /* The API. Methods in registration order (Sum, Sleep), then "". */
  cr_assert_eq(st.n_methods, 3);
  cr_assert_str_eq(st.methods[0].method, SUM_METHOD_SUM);
  cr_assert_str_eq(st.methods[1].method, SUM_METHOD_SLEEP);
  cr_assert_str_eq(st.methods[2].method, "");
  const uint64_t want_sum[IA_STATS_OUTCOMES] = {3, 1, 0, 0, 0},
                 want_sleep[IA_STATS_OUTCOMES] = {0, 0, 0, 1, 1};
  for (int o = 0; o < IA_STATS_OUTCOMES; o++) {
    cr_assert_eq(st.methods[0].tasks[o], want_sum[o], "Sum %s: %llu", ia_stats_outcome_name(o),
                 (unsigned long long)st.methods[0].tasks[o]);
    cr_assert_eq(st.methods[1].tasks[o], want_sleep[o], "Sleep %s: %llu", ia_stats_outcome_name(o),
                 (unsigned long long)st.methods[1].tasks[o]);
    cr_assert_eq(st.methods[2].tasks[o], 0);
  }
  const uint64_t want_ref[IA_STATS_REFUSALS] = {1, 0, 1, 1, 0};
  for (int r = 0; r < IA_STATS_REFUSALS; r++)
    cr_assert_eq(st.refusals[r], want_ref[r], "refused %s: %llu", ia_stats_refusal_name(r),
                 (unsigned long long)st.refusals[r]);
  uint64_t runs_sum = 0, runs_sleep = 0;
  for (int k = 0; k <= IA_STATS_BUCKETS; k++) {
    runs_sum += st.methods[0].durations[k];
    runs_sleep += st.methods[1].durations[k];
  }
  cr_assert_eq(runs_sum, 4, "Sum ran %llu times", (unsigned long long)runs_sum);
  cr_assert_eq(runs_sleep, 2, "Sleep ran %llu times", (unsigned long long)runs_sleep);
  cr_assert_geq(st.methods[1].duration_sum_s, 0.09, "the Sleeps ran %f s in all",
                st.methods[1].duration_sum_s);
  cr_assert_eq(st.running, 0);
  cr_assert_eq(st.queued, 0);
  cr_assert_eq(st.connections, 1);
  cr_assert_gt(st.received_bytes, 0);
  cr_assert_gt(st.sent_bytes, 0);

  /* /metrics, read by Prometheus's parser. */
  char *text = NULL;
  cr_assert_eq(tu_http_get(ia_slave_metrics_port(s), "/metrics", &text), 200);
  char *samples = tu_prom_parse(text, PARSE_METRICS_PATH);
  tu_assert_sample(samples, "interaction_slave_tasks_total{method=\"sum.Adder/Sum\",outcome=\"completed\"} 3");
  tu_assert_sample(samples, "interaction_slave_tasks_total{method=\"sum.Adder/Sum\",outcome=\"failed\"} 1");
  tu_assert_sample(samples, "interaction_slave_tasks_total{method=\"sum.Adder/Sleep\",outcome=\"cancelled\"} 1");
  tu_assert_sample(samples,
                "interaction_slave_tasks_total{method=\"sum.Adder/Sleep\",outcome=\"deadline_exceeded\"} 1");
  tu_assert_sample(samples, "interaction_slave_tasks_total{method=\"sum.Adder/Sleep\",outcome=\"completed\"} 0");
  tu_assert_sample(samples, "interaction_slave_refusals_total{reason=\"busy\"} 1");
  tu_assert_sample(samples, "interaction_slave_refusals_total{reason=\"unknown_method\"} 1");
  tu_assert_sample(samples, "interaction_slave_refusals_total{reason=\"hook\"} 1");
  tu_assert_sample(samples, "interaction_slave_refusals_total{reason=\"queue_full\"} 0");
  tu_assert_sample(samples, "interaction_slave_refusals_total{reason=\"shutting_down\"} 0");
  tu_assert_sample(samples, "interaction_slave_tasks_running{} 0");
  tu_assert_sample(samples, "interaction_slave_tasks_queued{} 0");
  tu_assert_sample(samples, "interaction_slave_connections{} 1");
  tu_assert_sample(samples, "interaction_slave_task_duration_seconds_count{method=\"sum.Adder/Sum\"} 4");
  tu_assert_sample(samples, "interaction_slave_task_duration_seconds_count{method=\"sum.Adder/Sleep\"} 2");
  tu_assert_sample(samples,
                "interaction_slave_task_duration_seconds_bucket{le=\"+Inf\",method=\"sum.Adder/Sum\"} 4");
  cr_assert(strstr(samples, "interaction_slave_received_bytes_total{} ") != NULL, "no received bytes: %s",
            samples);
  free(samples);
  free(text);
  ia_slave_stats_clear(&st);
  cr_assert_eq(tu_http_get(ia_slave_metrics_port(s), "/healthz", NULL), 200);
  cr_assert_eq(tu_http_get(ia_slave_metrics_port(s), "/nothing", NULL), 404);

  /* The same counters over the wire, from an observer beside the master. */
  ia_master *o = NULL;
  ia_conn *obs = NULL;
  TU_ASSERT_OK(tu_master_start("watcher", CHANNEL, &o, &err), &err);
  TU_ASSERT_OK(ia_master_observe(o, "slave", TU_HOST, ia_slave_port(s), TU_WAIT_MS, &obs, &err), &err);
  ia_slave_stats wire;
  TU_ASSERT_OK(ia_conn_slave_stats(obs, TU_WAIT_MS, &wire, &err), &err);
  cr_assert_eq(wire.n_methods, 3);
  for (size_t i = 0; i < 3; i++)
    for (int o2 = 0; o2 < IA_STATS_OUTCOMES; o2++)
      cr_assert_eq(wire.methods[i].tasks[o2],
                   i == 0   ? want_sum[o2]
                   : i == 1 ? want_sleep[o2]
                            : 0,
                   "over the wire, %s %s", wire.methods[i].method, ia_stats_outcome_name(o2));
  cr_assert_str_eq(wire.methods[0].method, SUM_METHOD_SUM);
  for (int r = 0; r < IA_STATS_REFUSALS; r++)
    cr_assert_eq(wire.refusals[r], want_ref[r], "over the wire, refused %s", ia_stats_refusal_name(r));
  cr_assert_eq(wire.connections, 2, "the master and the observer: %u", wire.connections);
  ia_slave_stats_clear(&wire);
  ia_conn_free(obs);
  ia_master_free(o);
  ia_conn_free(conn);
  ia_master_free(m);
  ia_slave_free(s);
}

Test(metrics, healthz_says_503_once_the_slave_shuts_down, .timeout = 60) {
  ia_slave *s = metered_slave(3000); /* a running Sleep keeps it shutting down for the grace */
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start("metered", CHANNEL, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "slave", ia_slave_port(s), &conn, &err), &err);
  cr_assert_eq(tu_http_get(ia_slave_metrics_port(s), "/healthz", NULL), 200);
  ia_task *sl = sleep_task(conn, 10000);
  cr_assert_eq(ia_task_start(sl), IA_OK);
  cr_assert_eq(tu_wait_status(sl, IA_STATUS_STARTED, TU_WAIT_MS), IA_STATUS_STARTED);
  ia_slave_shutdown(s);
  cr_assert_eq(tu_http_get(ia_slave_metrics_port(s), "/healthz", NULL), 503);
  ia_slave_stats st;
  cr_assert_eq(ia_slave_stats_get(s, &st), IA_OK);
  cr_assert_eq(st.running, 1, "%u running", st.running);
  ia_slave_stats_clear(&st);
  ia_slave_free(s);
  cr_assert_eq(ia_task_join(sl, TU_WAIT_MS), IA_OK);
  ia_task_free(sl);
  ia_conn_free(conn);
  ia_master_free(m);
}
