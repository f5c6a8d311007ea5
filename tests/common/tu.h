/*
 * Shared helpers of the Interaction test suite: payload codecs for the sum
 * example, an in-process sum slave, spawned processes (sum-slave, the sleepy
 * master) and a raw socket client that speaks the wire framing by hand.
 *
 * Nothing here asserts: every helper returns what happened so that tests (and
 * the non-criterion helper programs that also link this library) decide. Every
 * wait is bounded by the timeout it is given. Network helpers use 127.0.0.1
 * only; ports come from port 0 binds.
 */
#ifndef IA_TESTS_TU_H
#define IA_TESTS_TU_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "interaction/interaction.h"
#include "interaction.pb-c.h"

#define TU_HOST "127.0.0.1"
/* The bound on every "should happen soon" wait of the suite. */
#define TU_WAIT_MS 5000u

/* Methods the test handler serves besides the sum example's. */
#define TU_METHOD_NO_REPLY "test.Bad/NoReply" /* returns without reply or fail */
#define TU_METHOD_FAIL_OK "test.Bad/FailOk"   /* fails with IA_OK */

/* ---- time ---- */

uint64_t tu_now_ms(void);
void tu_sleep_ms(uint32_t ms);

/* ---- a counter that threads raise and a test waits on, with a deadline ---- */

typedef struct tu_flag {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* CLOCK_MONOTONIC */
  int count;
} tu_flag;

void tu_flag_init(tu_flag *flag);
void tu_flag_destroy(tu_flag *flag);
void tu_flag_raise(tu_flag *flag);
int tu_flag_count(tu_flag *flag);
/* True once count >= want; false if timeout_ms passed first. */
bool tu_flag_wait(tu_flag *flag, int want, uint32_t timeout_ms);

/* ---- what a slave's lost_connection callback saw ---- */

typedef struct tu_lost {
  tu_flag calls;
  pthread_mutex_t mu;
  ia_code why;    /* the last call's */
  uint64_t at_ms; /* tu_now_ms() at the last call */
} tu_lost;

void tu_lost_init(tu_lost *lost);
/* A lost_connection callback whose `user` is a tu_lost. */
void tu_on_lost(const char *master_name, ia_code why, void *user);
/* The last call's code, and in *at_ms its time. */
ia_code tu_lost_last(tu_lost *lost, uint64_t *at_ms);

/* ---- sum.proto payloads (malloc'd buffers: free() them) ---- */

uint8_t *tu_sum_task(int64_t a, int64_t b, bool has_a, bool has_b, size_t *len);
uint8_t *tu_sleep_task(uint32_t ms, size_t *len);
/* Decoders: false if the bytes are not the message or the field is absent. */
bool tu_sum_result(const uint8_t *buf, size_t len, int64_t *sum);
bool tu_sleep_result(const uint8_t *buf, size_t len, uint32_t *slept_ms);
bool tu_fail_info(const uint8_t *buf, size_t len, char *message, size_t cap);

/* ---- in-process slave ---- */

/* The handler every in-process test slave runs: the sum example's handler plus
 * the misbehaving TU_METHOD_* methods. Counts its calls in tu_handler_calls(). */
void tu_handler(ia_task_ctx *task, void *user);
int tu_handler_calls(void);
/* Polls until tu_handler_calls() >= want, up to timeout_ms. */
bool tu_wait_handler_calls(int want, uint32_t timeout_ms);

/* A test handler ends its task with tu_ended(ia_task_ctx_reply(...)) and the
 * like: ending a task fails only if it had an outcome already or memory ran
 * out, which the master then sees; this reports it on stderr. */
void tu_ended(ia_code rc);

/* Defaults for a test slave: 127.0.0.1, port 0, `channel`, tu_handler. */
/* The test slave's config. With TU_TLS_DIR set (the stress programs' TLS
 * runs: tests/tls/make_certs.c), it serves TLS with slave.pem and
 * slave.key from there, and tu_master_start*() masters verify it with
 * ca.pem. */
void tu_slave_config(ia_slave_config *config, uint32_t channel);
/* ia_slave_new + ia_slave_start; on failure nothing is left allocated. */
ia_code tu_slave_start(const ia_slave_config *config, ia_slave **out, ia_error *err);

/* ---- master ---- */

/* ia_master_new + ia_master_start with `name` and `channel`. */
ia_code tu_master_start(const char *name, uint32_t channel, ia_master **out, ia_error *err);
/* The same with heartbeats beat_ms / beat_tol (0: off). */
ia_code tu_master_start_beat(const char *name, uint32_t channel, uint32_t beat_ms, uint32_t beat_tol,
                             ia_master **out, ia_error *err);
/* ia_master_connect to 127.0.0.1:port without data, within TU_WAIT_MS. */
ia_code tu_connect(ia_master *master, const char *name, uint16_t port, ia_conn **out, ia_error *err);
/* A whole sum call through ia_call: IA_OK with *sum, or the code (err filled). */
ia_code tu_call_sum(ia_conn *conn, int64_t a, int64_t b, int64_t *sum, ia_error *err);
/* Builds (does not start) a Sum or Sleep task; NULL on failure. */
ia_task *tu_sum_task_new(ia_conn *conn, int64_t a, int64_t b);
ia_task *tu_sleep_task_new(ia_conn *conn, uint32_t ms);
/* Polls until the task's status is `want` or terminal, up to timeout_ms;
 * returns the last status seen. */
ia_status tu_wait_status(ia_task *task, ia_status want, uint32_t timeout_ms);
/* What ia_master_find() gives for `name`, with the reference it took
 * released at once: a pointer to compare, never to use. */
const void *tu_found(ia_master *master, const char *name);
/* Polls until ia_conn_is_connected() is `want`, up to timeout_ms. */
bool tu_wait_connected(ia_conn *conn, bool want, uint32_t timeout_ms);

/* ---- spawned processes ---- */

/* Initialise with TU_PROC_INIT so that tu_proc_kill() of a never-spawned
 * process is a no-op. */
typedef struct tu_proc {
  pid_t pid;      /* 0 once reaped */
  int out_fd;     /* read end of the child's stdout, kept open so it never gets SIGPIPE */
  int status;     /* waitpid status once reaped */
  char line[256]; /* the ready line, or why tu_spawn() failed */
} tu_proc;

#define TU_PROC_INIT                                                                                         \
  {                                                                                                          \
    0, -1, 0, {                                                                                              \
      0                                                                                                      \
    }                                                                                                        \
  }

/*
 * fork + execv of argv[0] with stdout on a pipe, then waits up to timeout_ms
 * for a stdout line starting with `ready_prefix` (kept in proc->line). The
 * child dies with the test process (PR_SET_PDEATHSIG) and is registered for
 * tu_proc_kill_all(). On failure the child is killed and reaped, false is
 * returned and proc->line says why. Between fork and exec the child calls
 * only async-signal-safe functions, so this is safe in a threaded process.
 */
bool tu_spawn(tu_proc *proc, char *const argv[], const char *ready_prefix, uint32_t timeout_ms);
/* Reads the child's stdout on until a line starting with `prefix` (kept in
 * proc->line), up to timeout_ms. Lines that came in the same read after
 * it are dropped: for a child that prints one line per step. */
bool tu_proc_read_line(tu_proc *proc, const char *prefix, uint32_t timeout_ms);
/* Spawns SUM_SLAVE_PATH-style `path` with --host 127.0.0.1 --port 0 --channel C
 * and `extra` arguments (NULL-terminated, may be NULL); returns the port from
 * its `listening on H:P` line, 0 on failure. */
uint16_t tu_spawn_sum_slave(tu_proc *proc, const char *path, uint32_t channel, const char *const extra[]);
/* Waits up to timeout_ms for the child to exit; true with proc->status set. */
bool tu_proc_wait(tu_proc *proc, uint32_t timeout_ms);
/* kill(pid, sig) if the child was not reaped yet. */
bool tu_proc_signal(tu_proc *proc, int sig);
/* SIGKILL and reap (no-op when already reaped); closes the pipe. */
void tu_proc_kill(tu_proc *proc);
/* tu_proc_kill() on every child still registered; for criterion .fini. */
void tu_proc_kill_all(void);

/* Waits up to timeout_ms until a TCP connection to 127.0.0.1:port is
 * established (as /proc/net/tcp lists it); true once one is. For a test
 * that must act only once another process has connected, however slowly
 * it starts (valgrind). */
bool tu_wait_established(uint16_t port, uint32_t timeout_ms);

/* ---- raw socket client ---- */

/* A blocking TCP connection to 127.0.0.1:port, or -1. */
int tu_raw_connect(uint16_t port);
/* Writes all bytes (MSG_NOSIGNAL). */
bool tu_raw_write(int fd, const void *buf, size_t len);
/* Writes a 4-byte big-endian length and then `len` body bytes. */
bool tu_raw_write_frame(int fd, const void *body, size_t len);
/* Packs a Frame's body (no length prefix) into a malloc'd buffer. */
uint8_t *tu_frame_pack(const Interaction__V1__Frame *frame, size_t *len);
/* Packs and writes one Frame with its length prefix. */
bool tu_raw_send(int fd, const Interaction__V1__Frame *frame);
/* Writes a Hello (version 1, channel, name, frame id 1) and nothing else. */
bool tu_raw_send_hello(int fd, uint32_t channel, const char *name);
/* The same, proposing heartbeats beat_ms/beat_tol when has_beat. */
bool tu_raw_send_hello_beat(int fd, uint32_t channel, const char *name, bool has_beat, uint32_t beat_ms,
                            uint32_t beat_tol);
/* The same, asking to observe when `observe`. */
bool tu_raw_send_hello_full(int fd, uint32_t channel, const char *name, bool has_beat, uint32_t beat_ms,
                            uint32_t beat_tol, bool observe);
/* Writes a Hello (version 1, channel, name) and reads the answer: true on
 * Welcome. */
bool tu_raw_hello(int fd, uint32_t channel, const char *name);

/* The slave side, for a fake slave a master dials: a listening socket on
 * 127.0.0.1 port 0 (the port in *port), or -1. */
int tu_raw_listen(uint16_t *port);
/* Accepts one connection within timeout_ms, or -1. */
int tu_raw_accept(int listen_fd, uint32_t timeout_ms);
/* Reads the master's Hello and answers Welcome (version 1, capacity 1):
 * true if a Hello came. */
bool tu_raw_welcome(int fd);
/* The same, saying heartbeats beat_ms/beat_tol in the Welcome when has_beat
 * (without the fields otherwise); proposed (may be NULL) gets what the
 * Hello proposed, 0 for a field it lacked. */
bool tu_raw_welcome_beat(int fd, bool has_beat, uint32_t beat_ms, uint32_t beat_tol, uint32_t proposed[2]);
/* Reads one frame within timeout_ms: 1 with *frame (free with
 * interaction__v1__frame__free_unpacked), 0 on EOF or reset, -1 on timeout or
 * an undecodable frame. */
int tu_raw_read_frame(int fd, uint32_t timeout_ms, Interaction__V1__Frame **frame);
/* Reads frames until a Goodbye; true with its code. False on EOF, timeout or
 * any other frame first (skipping nothing: the Goodbye must come next). */
bool tu_raw_expect_goodbye(int fd, uint32_t timeout_ms, uint32_t *code);
/* True if the peer closes (EOF or reset) within timeout_ms with no more data. */
bool tu_raw_expect_eof(int fd, uint32_t timeout_ms);

/* Sends a TaskFail, Refusal or Goodbye (`kind`, an Interaction__V1__Frame__BodyCase)
 * for `id`; without a code field when has_code is false. */
bool tu_raw_send_status(int fd, uint64_t id, int kind, bool has_code, uint32_t code, const char *message);
/* Sends a Task frame: `method` and `len` bytes of payload, frame id `id`. */
bool tu_raw_send_task(int fd, uint64_t id, const char *method, const void *payload, size_t len);
/* Reads frames until a Task (others, such as Pings, skipped; at most 64,
 * within TU_WAIT_MS): its id, or 0 if none came -- or, with `method`, if
 * the Task's method is another. */
uint64_t tu_raw_next_task(int fd, const char *method);
/* Sends a frame whose body is an empty message (Ping, Pong, Accepted...). */
bool tu_raw_send_empty(int fd, uint64_t id, int kind);
/* Reads frames, skipping any that are not a Goodbye (at most 10,000), until a
 * Goodbye: true with its code. False on EOF, reset or timeout first. */
bool tu_raw_await_goodbye(int fd, uint32_t timeout_ms, uint32_t *code);
/* True if the peer closes (EOF or reset) within timeout_ms, whatever it sends
 * before (a Goodbye, say): the bytes are read and dropped. */
bool tu_raw_expect_closed(int fd, uint32_t timeout_ms);
/* True if nothing at all (no byte, no EOF) arrives on fd for `ms`. */
bool tu_raw_quiet_for(int fd, uint32_t ms);

/* ---- a fake slave on its own thread ---- */

typedef struct tu_fake tu_fake;
/* What the fake slave does with the one master it accepted (fd is closed
 * after it returns). It must bound every wait. */
typedef void (*tu_fake_script)(tu_fake *fake, int fd);

/* Initialise with tu_fake_start(); every field but `user` is the helper's.
 * `user` is the script's, read by the test after tu_fake_join(). */
struct tu_fake {
  int listen_fd;
  uint16_t port;
  pthread_t thread;
  bool started;
  bool accepted; /* written by the thread, read after tu_fake_join() */
  tu_fake_script script;
  void *user;
};

/* Listens on 127.0.0.1 port 0 (rcvbuf > 0 sets SO_RCVBUF on the listening
 * socket first, so that the accepted one has it) and starts a thread that
 * accepts one connection within TU_WAIT_MS and runs `script` on it. */
bool tu_fake_start(tu_fake *fake, tu_fake_script script, void *user, int rcvbuf);
/* Joins the thread and closes the listening socket. */
void tu_fake_join(tu_fake *fake);

/* ---- process measurements ---- */

/* ---- temporary files ---- */

#define TU_PATH_MAX 256
/* Makes a file holding n bytes of `data` (mode 600) in $TMPDIR (else /tmp),
 * named ia-TAG-XXXXXX, its path in `path`. Returns its descriptor, open at
 * its end (the caller closes it), or -1. Each file made is remembered for
 * tu_temp_remove_all(), so that a test that fails half-way leaves none. */
int tu_temp_file(char path[TU_PATH_MAX], const char *tag, const void *data, size_t n);
/* Unlinks every file tu_temp_file() made in this process (a suite's .fini). */
void tu_temp_remove_all(void);

/* True when the suite runs under valgrind (the IA_VALGRIND environment
 * variable is set): bounds on waits are then not asserted. */
bool tu_valgrind(void);
/* Bytes of heap in use now: the sanitizer allocator's count in ASan builds,
 * glibc's mallinfo2() otherwise (the main arena's chunks in use, and every
 * chunk large enough to have its own mapping). */
size_t tu_heap_in_use(void);
/* VmSize of this process in KiB (from /proc/self/status), or 0. */
unsigned long tu_vm_size_kb(void);

#endif
