/* The master's statistics: after a scripted sequence on one connection --
 * completed, failed, refused busy, cancelled, timed out -- ia_conn_stats_get()
 * and the master's scraped /metrics (read by Prometheus's own parser) hold
 * exactly the expected numbers, per slave; connections are counted by
 * state; /healthz says 200 while the master runs. */
#include <stdlib.h>

#include "fixture.h"
#include "tu_http.h"

#ifndef PARSE_METRICS_PATH
#error "PARSE_METRICS_PATH must name tests/helpers/parse_metrics.py"
#endif

#define CHANNEL 97

static ia_master *metered_master(void) {
  ia_master_config config;
  ia_master_config_init(&config);
  config.name = "metered";
  config.channel = CHANNEL;
  config.metrics_addr = "127.0.0.1:0";
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_master_new(&config, &m, &err), &err);
  TU_ASSERT_OK(ia_master_start(m, &err), &err);
  cr_assert_neq(ia_master_metrics_port(m), 0, "no metrics port");
  return m;
}

Test(master_metrics, a_scripted_sequence_is_counted_exactly_per_slave, .timeout = 60) {
  ia_slave *s = fixture_slave(CHANNEL);
  ia_master *m = metered_master();
  ia_error err = IA_ERROR_INIT;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_connect(m, "learner-0", ia_slave_port(s), &conn, &err), &err);

  for (int i = 0; i < 3; i++) /* 3 completed */
    assert_sum_works(conn, i, 1);
  assert_sum_without_b_fails(conn);
  ia_task *sl = tu_sleep_task_new(conn, 5000); /* 1 cancelled, and 1 refused busy meanwhile */
  cr_assert_eq(ia_task_start(sl), IA_OK);
  cr_assert_eq(tu_wait_status(sl, IA_STATUS_STARTED, TU_WAIT_MS), IA_STATUS_STARTED);
  int64_t sum = 0;
  cr_assert_eq(tu_call_sum(conn, 1, 2, &sum, &err), IA_TASK_ALREADY_EXIST);
  ia_error_clear(&err);
  ia_conn_stats st;
  cr_assert_eq(ia_conn_stats_get(conn, &st), IA_OK);
  cr_assert_eq(st.in_flight, 1, "%u in flight with a Sleep running", st.in_flight);
  cr_assert_eq(ia_task_cancel(sl), IA_OK);
  cr_assert_eq(ia_task_join(sl, TU_WAIT_MS), IA_OK);
  ia_task_free(sl);
  ia_task *late = tu_sleep_task_new(conn, 5000); /* 1 timed out */
  cr_assert_eq(ia_task_set_deadline(late, 100), IA_OK);
  cr_assert_eq(ia_task_start(late), IA_OK);
  cr_assert_eq(ia_task_join(late, TU_WAIT_MS), IA_OK);
  TU_ASSERT_STATUS(late, IA_STATUS_TIMED_OUT);
  ia_task_free(late);

  cr_assert_eq(ia_conn_stats_get(conn, &st), IA_OK);
  const uint64_t want[IA_OUTCOMES] = {3, 1, 0, 1, 1, 1};
  for (int o = 0; o < IA_OUTCOMES; o++)
    cr_assert_eq(st.tasks[o], want[o], "%s: %llu, not %llu", ia_conn_outcome_name(o),
                 (unsigned long long)st.tasks[o], (unsigned long long)want[o]);
  cr_assert_eq(st.in_flight, 0);
  uint64_t timed = 0;
  for (int k = 0; k <= IA_STATS_BUCKETS; k++)
    timed += st.latency[k];
  cr_assert_eq(timed, 6, "%llu latencies: every task that was sent, but the refused one",
               (unsigned long long)timed);
  cr_assert_geq(st.latency_max_s, 0.09, "the slowest task took %f s", st.latency_max_s);
  cr_assert(st.latency_p50_s > 0 && st.latency_p50_s <= st.latency_p99_s &&
                st.latency_p99_s <= st.latency_max_s,
            "p50 %f, p99 %f, max %f", st.latency_p50_s, st.latency_p99_s, st.latency_max_s);

  /* A second connection, closed by its slave's shutdown (a Goodbye), for
   * the state gauge. */
  ia_slave *s2 = fixture_slave(CHANNEL);
  ia_conn *gone = NULL;
  TU_ASSERT_OK(tu_connect(m, "learner-1", ia_slave_port(s2), &gone, &err), &err);
  ia_slave_free(s2);
  cr_assert(tu_wait_connected(gone, false, TU_WAIT_MS), "the second connection never went down");

  char *text = NULL;
  cr_assert_eq(tu_http_get(ia_master_metrics_port(m), "/metrics", &text), 200);
  char *samples = tu_prom_parse(text, PARSE_METRICS_PATH);
  tu_assert_sample(samples, "interaction_master_tasks_total{outcome=\"completed\",slave=\"learner-0\"} 3");
  tu_assert_sample(samples, "interaction_master_tasks_total{outcome=\"failed\",slave=\"learner-0\"} 1");
  tu_assert_sample(samples, "interaction_master_tasks_total{outcome=\"refused\",slave=\"learner-0\"} 1");
  tu_assert_sample(samples, "interaction_master_tasks_total{outcome=\"cancelled\",slave=\"learner-0\"} 1");
  tu_assert_sample(samples, "interaction_master_tasks_total{outcome=\"timed_out\",slave=\"learner-0\"} 1");
  tu_assert_sample(samples, "interaction_master_tasks_total{outcome=\"lost\",slave=\"learner-0\"} 0");
  tu_assert_sample(samples, "interaction_master_tasks_total{outcome=\"completed\",slave=\"learner-1\"} 0");
  tu_assert_sample(samples, "interaction_master_task_latency_seconds_count{slave=\"learner-0\"} 6");
  tu_assert_sample(samples,
                   "interaction_master_task_latency_seconds_bucket{le=\"+Inf\",slave=\"learner-0\"} 6");
  tu_assert_sample(samples, "interaction_master_connections{state=\"connected\"} 1");
  tu_assert_sample(samples, "interaction_master_connections{state=\"lost\"} 0");
  tu_assert_sample(samples, "interaction_master_connections{state=\"closed\"} 1");
  free(samples);
  free(text);
  cr_assert_eq(tu_http_get(ia_master_metrics_port(m), "/healthz", NULL), 200);
  ia_master_shutdown(m);
  ia_master_join(m);
  ia_conn_free(gone);
  ia_conn_free(conn);
  ia_master_free(m);
  ia_slave_free(s);
}
