/*
 * Runs another program (protoc, for `interaction call --proto`) as a bounded
 * child process: an argv array handed to execv, never a shell, its stdin fed
 * from a buffer, its stdout captured (bounded) or passed on to one of ours,
 * its stderr captured (truncated), and the whole run bounded in time: a child
 * still running at the deadline is killed and reaped.
 *
 * Never: interpolate a string into a shell command line, leave a child
 * unreaped, or wait for one without a bound. It prints nothing itself; what
 * went wrong is in the result for the caller to say.
 */
#ifndef CLI_CHILD_H
#define CLI_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How much of a child's stderr is kept; the rest is read and dropped. */
#define CLI_CHILD_ERR_MAX 4096

typedef struct cli_child {
  /* In: what the child reads on stdin (then EOF), and where its stdout goes:
   * out_fd >= 0 passes it that descriptor of ours; -1 captures it into `out`,
   * and more than out_max bytes there kill the child (out_overflow). */
  const void *in;
  size_t in_len;
  int out_fd;
  size_t out_max;
  /* Out. `out` is malloc'd (NUL-terminated, for text) and the caller's to
   * free, also when the run failed. */
  uint8_t *out;
  size_t out_len;
  char err[CLI_CHILD_ERR_MAX]; /* its stderr, NUL-terminated, cut at the end if longer */
  int exit_code;               /* -1 unless it exited normally */
  int signal;                  /* the signal that ended it, or 0 */
  int exec_errno;              /* why execv failed, or 0 */
  bool timed_out;              /* killed at the deadline */
  bool out_overflow;           /* killed for writing more than out_max bytes */
} cli_child;

/* Runs argv[0] (a path: no PATH search) with `argv` (NULL-terminated) within
 * `timeout_ms`. Returns 0 when the child ran and was reaped, whatever its
 * outcome (see the fields), or -1 with errno set when it could not be started
 * (pipes, fork, memory). Not thread-safe: call it while the process has no
 * other threads that fork, as the CLI does before and after its session. */
__attribute__((warn_unused_result)) int cli_child_run(char *const argv[], uint32_t timeout_ms, cli_child *c);

/* True when the child exited with status 0 and was not cut short. */
bool cli_child_ok(const cli_child *c);

/* Finds `name` in the directories of $PATH, as execvp would (a name with a
 * '/' is taken as it is). Returns a malloc'd path to an executable file, or
 * NULL (errno ENOENT when none was found, ENOMEM). */
char *cli_find_program(const char *name);

#endif
