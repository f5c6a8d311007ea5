/* What the TLS test files share: their certificates (made per test
 * process by the suite's .init, removed by its .fini), TLS slaves that also
 * echo, TLS masters, and the assertions on a connect that must work or
 * fail a given way. Criterion-asserting, so only tests include it. */
#ifndef IA_TESTS_TLS_FIXTURE_H
#define IA_TESTS_TLS_FIXTURE_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"
#include "tls_certs.h"

#define TLS_CHANNEL 47
#define TLS_STR_(x) #x
#define TLS_STR(x) TLS_STR_(x) /* TLS_STR(TLS_CHANNEL) is "47" */
/* Methods under this prefix answer with their own payload. */
#define TLS_ECHO "tls.Echo/"
#define TLS_ECHO_METHOD TLS_ECHO "Echo"

/* This test process's certificates. */
static tls_certs certs;

/* Every log line of this test process, for the slave's side of a refusal. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[32768];
static size_t log_len;

static inline void tls_log_capture(ia_log_level level, const char *message, void *user) {
  (void)level;
  (void)user;
  pthread_mutex_lock(&log_mu);
  size_t n = strlen(message);
  if (log_len + n + 2 < sizeof log_text) {
    memcpy(log_text + log_len, message, n);
    log_len += n;
    log_text[log_len++] = '\n';
    log_text[log_len] = '\0';
  }
  pthread_mutex_unlock(&log_mu);
}

/* A line with `a` and, if not NULL, `b` in it is logged within TU_WAIT_MS:
 * the slave said what went wrong on its side. */
static inline void assert_logged(const char *a, const char *b) {
  bool found = false;
  uint64_t end = tu_now_ms() + TU_WAIT_MS;
  while (!found) {
    pthread_mutex_lock(&log_mu);
    for (const char *line = log_text; *line && !found;) {
      const char *eol = strchr(line, '\n');
      size_t n = eol ? (size_t)(eol - line) : strlen(line);
      char one[1024];
      snprintf(one, sizeof one, "%.*s", (int)n, line);
      found = strstr(one, a) && (!b || strstr(one, b));
      line += n + (eol != NULL);
    }
    pthread_mutex_unlock(&log_mu);
    if (found || tu_now_ms() >= end) break;
    tu_sleep_ms(5);
  }
  cr_assert(found, "no log line with \"%s\"%s%s%s; the log:\n%s", a, b ? " and \"" : "", b ? b : "",
            b ? "\"" : "", log_text);
}

static inline void tls_suite_init(void) {
  ia_log_set_level(IA_LOG_INFO);
  ia_log_set_handler(tls_log_capture, NULL);
  char why[1024] = "";
  cr_assert(tls_certs_make(&certs, why, sizeof why), "cannot make the test certificates: %s", why);
}

static inline void tls_suite_fini(void) {
  tu_proc_kill_all();
  tls_certs_remove(&certs);
  tu_temp_remove_all();
}

/* tu_handler, and an echo of every TLS_ECHO method. */
static inline void tls_handler(ia_task_ctx *task, void *user) {
  if (strncmp(ia_task_ctx_method(task), TLS_ECHO, strlen(TLS_ECHO)) != 0) {
    tu_handler(task, user);
    return;
  }
  size_t len = 0;
  const uint8_t *payload = ia_task_ctx_payload(task, &len);
  tu_ended(ia_task_ctx_reply(task, payload, len));
}

/* A test slave on TLS_CHANNEL serving tls_handler, with these TLS files
 * (each may be NULL; all NULL is plain TCP, whatever TU_TLS_DIR says). */
static inline void tls_slave_config(ia_slave_config *config, const char *cert, const char *key,
                                    const char *ca) {
  tu_slave_config(config, TLS_CHANNEL);
  config->handler = tls_handler;
  config->tls_cert = cert;
  config->tls_key = key;
  config->tls_ca = ca;
}

/* A started slave presenting `cert` (its key is the slave key) and, with
 * `ca`, asking masters for a client certificate that CA signed. */
static inline ia_slave *tls_slave(const char *cert, const char *ca) {
  ia_slave_config config;
  tls_slave_config(&config, cert, certs.slave_key, ca);
  return fixture_slave_start(&config);
}

/* A master `name` on TLS_CHANNEL trusting `ca` (NULL: plain TCP). */
static inline void tls_master_config(ia_master_config *config, const char *name, const char *ca) {
  ia_master_config_init(config);
  config->name = name;
  config->channel = TLS_CHANNEL;
  config->tls_ca = ca;
}

static inline ia_master *tls_master_start(const ia_master_config *config) {
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_master_new(config, &m, &err), &err);
  TU_ASSERT_OK(ia_master_start(m, &err), &err);
  return m;
}

static inline ia_master *tls_master(const char *name, const char *ca) {
  ia_master_config config;
  tls_master_config(&config, name, ca);
  return tls_master_start(&config);
}

/* A master trusting the test CA that presents the test CA's client
 * certificate. */
static inline ia_master *tls_client_master(const char *name, const char *client_cert) {
  ia_master_config config;
  tls_master_config(&config, name, certs.ca);
  config.tls_cert = client_cert;
  config.tls_key = certs.client_key;
  return tls_master_start(&config);
}

/* Connects m to the slave on `port`, which must work, and runs a Sum. */
static inline void assert_connects(ia_master *m, uint16_t port) {
  ia_conn *c = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_connect(m, "slave", port, &c, &err), &err);
  assert_sum_works(c, 20, 22);
  ia_conn_free(c);
}

/* The bound of a connect that must fail; it must fail well before it,
 * within TU_WAIT_MS (not asserted under valgrind). */
#define TLS_CONNECT_BOUND_MS (4 * TU_WAIT_MS)

/* Connects m to the slave on `port`, which must fail with `want` and a
 * message containing `text` (NULL: any), well before the connect's own
 * bound. */
static inline void assert_refused(ia_master *m, uint16_t port, ia_code want, const char *text) {
  ia_conn *c = NULL;
  ia_error err = IA_ERROR_INIT;
  uint64_t t0 = tu_now_ms();
  ia_code rc = ia_master_connect(m, "slave", TU_HOST, port, NULL, 0, TLS_CONNECT_BOUND_MS, &c, &err);
  uint64_t took = tu_now_ms() - t0;
  cr_assert_eq(rc, want, "connect: %d %s (%s), not %d %s", rc, ia_code_name(rc), err.message, want,
               ia_code_name(want));
  cr_assert_null(c, "a refused connect gave a connection");
  if (text != NULL)
    cr_assert_not_null(strstr(err.message, text), "the error message lacks \"%s\": %s", text, err.message);
  if (!tu_valgrind())
    cr_assert_lt(took, TU_WAIT_MS, "the refused connect took %llu ms (bound %u)", (unsigned long long)took,
                 TLS_CONNECT_BOUND_MS);
  ia_error_clear(&err);
}

/* The slave on `port` is unharmed: a fresh master trusting the test CA
 * (presenting `client_cert` if not NULL) connects and runs a Sum. */
static inline void assert_slave_serves(uint16_t port, const char *client_cert) {
  ia_master *m =
      client_cert ? tls_client_master("good-master", client_cert) : tls_master("good-master", certs.ca);
  assert_connects(m, port);
  ia_master_free(m);
}

#endif
