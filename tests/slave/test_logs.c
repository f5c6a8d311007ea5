/* Logs an operator can read: at info, one line per connection event and per
 * refused or failed task -- with the peer's name and address, and the task
 * id -- on both ends, and nothing for a task that completed; the default
 * handler stamps each line with the time in UTC. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

#define CHANNEL 99
#define LOG_MAX (64 * 1024)

static struct {
  pthread_mutex_t mu;
  char text[LOG_MAX];
  size_t len;
} logged = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void capture(ia_log_level level, const char *message, void *user) {
  (void)level;
  (void)user;
  pthread_mutex_lock(&logged.mu);
  int n = snprintf(logged.text + logged.len, LOG_MAX - logged.len, "%s\n", message);
  if (n > 0 && logged.len + (size_t)n < LOG_MAX) logged.len += (size_t)n;
  pthread_mutex_unlock(&logged.mu);
}

/* How many captured lines match the extended regex `re`. */
static int lines_matching(const char *re) {
  regex_t rx;
  cr_assert_eq(regcomp(&rx, re, REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0, "bad regex %s", re);
  pthread_mutex_lock(&logged.mu);
  int n = 0;
  for (char *line = logged.text; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    n += regexec(&rx, line, 0, NULL, 0) == 0;
    if (nl) *nl = '\n';
    line = nl ? nl + 1 : NULL;
  }
  pthread_mutex_unlock(&logged.mu);
  regfree(&rx);
  return n;
}

Test(logs, refused_and_failed_tasks_get_one_line_each_with_peer_and_id_and_completed_none, .timeout = 30) {
  ia_log_set_handler(capture, NULL);
  ia_log_set_level(IA_LOG_INFO);
  ia_slave *s = fixture_slave(CHANNEL);
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start("coordinator", CHANNEL, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "learner", ia_slave_port(s), &conn, &err), &err);
  for (int i = 0; i < 5; i++)
    assert_sum_works(conn, i, 1);
  assert_sum_without_b_fails(conn);
  TU_ASSERT_OK(ia_conn_disconnect(conn, NULL, 0, TU_WAIT_MS, &err), &err);
  ia_conn_free(conn);
  ia_master_free(m);
  ia_slave_free(s);
  ia_log_set_handler(NULL, NULL);
  ia_log_set_level(IA_LOG_WARN);

  const char *peer = "master coordinator at 127\\.0\\.0\\.1:[0-9]+";
  char re[256];
  snprintf(re, sizeof re, "^slave: %s connected$", peer);
  cr_assert_eq(lines_matching(re), 1, "no connect line; the log:\n%s", logged.text);
  snprintf(re, sizeof re, "^slave: %s disconnected$", peer);
  cr_assert_eq(lines_matching(re), 1, "no disconnect line; the log:\n%s", logged.text);
  snprintf(re, sizeof re, "^slave: task [0-9]+ \\(sum\\.Adder/Sum\\) of %s ended failed$", peer);
  cr_assert_eq(lines_matching(re), 1, "no line for the failed task; the log:\n%s", logged.text);
  cr_assert_eq(
      lines_matching("^master: task [0-9]+ \\(sum\\.Adder/Sum\\) on learner at 127\\.0\\.0\\.1:[0-9]+ ended "
                     "failed: A or B not found in task data\\. \\(TASK_FAILED\\)$"),
      1, "no master line for the failed task; the log:\n%s", logged.text);
  cr_assert_eq(lines_matching("^master: connected learner to 127\\.0\\.0\\.1:[0-9]+$"), 1, "the log:\n%s",
               logged.text);
  /* One line per task that did not complete, none for the five that did. */
  cr_assert_eq(lines_matching("task [0-9]+"), 2, "task lines; the log:\n%s", logged.text);
}

Test(logs, the_default_handler_stamps_each_line_with_the_utc_time, .timeout = 30) {
  char path[TU_PATH_MAX];
  int fd = tu_temp_file(path, "log", NULL, 0);
  cr_assert_geq(fd, 0);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  cr_assert_geq(saved, 0);
  cr_assert_geq(dup2(fd, STDERR_FILENO), 0);
  ia_log_set_level(IA_LOG_INFO);
  ia_slave *s = fixture_slave(CHANNEL);
  ia_slave_free(s);
  ia_log_set_level(IA_LOG_WARN);
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  char text[4096] = "";
  ssize_t n = pread(fd, text, sizeof text - 1, 0);
  close(fd);
  unlink(path);
  cr_assert_gt(n, 0, "nothing was logged");
  text[n] = '\0';
  regex_t rx;
  cr_assert_eq(
      regcomp(&rx,
              "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z interaction info: slave: "
              "listening on 127\\.0\\.0\\.1:[0-9]+$",
              REG_EXTENDED | REG_NEWLINE | REG_NOSUB),
      0);
  int rc = regexec(&rx, text, 0, NULL, 0);
  regfree(&rx);
  cr_assert_eq(rc, 0, "no stamped 'listening on' line in:\n%s", text);
}
