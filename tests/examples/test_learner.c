/* The learner example as processes: two learner-slaves on 127.0.0.1 port 0
 * and the coordinator fanning out to both, checked by its exit status and its
 * output. Every wait is bounded; every process is killed by pid and reaped. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "tu.h"

#if !defined(LEARNER_SLAVE_PATH) || !defined(COORDINATOR_PATH)
#error "LEARNER_SLAVE_PATH and COORDINATOR_PATH must name the learner example's programs"
#endif

#define CHANNEL 17
/* The coordinator's whole run: connects, Start and a few rounds. */
#define RUN_MS 30000u

static tu_proc learners[2] = {TU_PROC_INIT, TU_PROC_INIT};
static char endpoints[2][32];

static void start_learners(void) {
  for (int i = 0; i < 2; i++) {
    uint16_t port = tu_spawn_sum_slave(&learners[i], LEARNER_SLAVE_PATH, CHANNEL, NULL);
    cr_assert_neq(port, 0, "learner-slave %d did not start: %s", i, learners[i].line);
    snprintf(endpoints[i], sizeof endpoints[i], "%s:%u", TU_HOST, (unsigned)port);
  }
}

/* SIGTERM: each learner must stop on its own, with status 0. */
static void stop_learners(void) {
  for (int i = 0; i < 2; i++) {
    cr_assert(tu_proc_signal(&learners[i], SIGTERM));
    cr_assert(tu_proc_wait(&learners[i], TU_WAIT_MS), "learner-slave %d ignored SIGTERM", i);
    cr_assert(WIFEXITED(learners[i].status) && WEXITSTATUS(learners[i].status) == 0,
              "learner-slave %d ended with status 0x%x", i, (unsigned)learners[i].status);
  }
}

static void kill_all(void) {
  tu_proc_kill_all();
}

TestSuite(learner, .fini = kill_all, .timeout = 120);

/* Runs the coordinator with `extra` options before the two endpoints, waits
 * for the stdout line starting with `line_prefix` (kept in coordinator->line)
 * and for its exit; returns its exit status. */
static int run_coordinator(tu_proc *coordinator, const char *const extra[], const char *line_prefix) {
  char channel[16];
  snprintf(channel, sizeof channel, "%d", CHANNEL);
  char *argv[16];
  int n = 0;
  argv[n++] = COORDINATOR_PATH;
  argv[n++] = "--channel";
  argv[n++] = channel;
  for (int i = 0; extra != NULL && extra[i] != NULL && n < 12; i++)
    argv[n++] = (char *)extra[i];
  argv[n++] = endpoints[0];
  argv[n++] = endpoints[1];
  argv[n] = NULL;
  cr_assert(tu_spawn(coordinator, argv, line_prefix, RUN_MS), "no '%s' line from the coordinator: %s",
            line_prefix, coordinator->line);
  cr_assert(tu_proc_wait(coordinator, RUN_MS), "the coordinator did not exit");
  cr_assert(WIFEXITED(coordinator->status), "the coordinator died of signal %d",
            WTERMSIG(coordinator->status));
  return WEXITSTATUS(coordinator->status);
}

Test(learner, coordinator_fans_out_to_two_learners_and_the_loss_goes_down) {
  start_learners();
  tu_proc coordinator = TU_PROC_INIT;
  const char *const extra[] = {"--rounds", "4", "--batch-size", "32", NULL};
  int status = run_coordinator(&coordinator, extra, "[done]");
  float first = 0, last = 0;
  unsigned rounds = 0;
  cr_assert_eq(sscanf(coordinator.line, "[done] mean loss %f -> %f over %u round(s)", &first, &last, &rounds),
               3, "unexpected summary line: %s", coordinator.line);
  cr_assert_eq(rounds, 4);
  cr_assert(first > 0 && last < first, "the mean loss went %f -> %f", first, last);
  cr_assert_eq(status, 0, "the coordinator exited %d", status);
  tu_proc_kill(&coordinator);
  /* Disconnected, the learners serve the next master: a second run works. */
  const char *const again[] = {"--rounds", "2", NULL};
  status = run_coordinator(&coordinator, again, "coordinator: ");
  cr_assert_str_eq(coordinator.line, "coordinator: OK");
  cr_assert_eq(status, 0);
  tu_proc_kill(&coordinator);
  stop_learners();
}

Test(learner, coordinator_exits_1_when_the_learners_refuse_start) {
  start_learners();
  tu_proc coordinator = TU_PROC_INIT;
  /* The learners accept a learning rate in (0, 1] only: Start fails (603). */
  const char *const extra[] = {"--lr", "5", NULL};
  int status = run_coordinator(&coordinator, extra, "coordinator: ");
  cr_assert_str_eq(coordinator.line, "coordinator: FAILED");
  cr_assert_eq(status, 1);
  tu_proc_kill(&coordinator);
  stop_learners();
}

Test(learner, coordinator_exits_1_on_a_channel_mismatch) {
  start_learners();
  tu_proc coordinator = TU_PROC_INIT;
  /* A second --channel overrides the first. */
  const char *const extra[] = {"--channel", "18", NULL};
  int status = run_coordinator(&coordinator, extra, "coordinator: ");
  cr_assert_str_eq(coordinator.line, "coordinator: FAILED");
  cr_assert_eq(status, 1);
  tu_proc_kill(&coordinator);
  stop_learners();
}
