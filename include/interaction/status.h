/*
 * Status codes, errors and logging shared by both ends of Interaction.
 *
 * Every fallible function returns an ia_code (IA_OK on success) and, where the
 * caller passes one, fills an ia_error with the code, a human message and any
 * data the peer attached to a refusal.
 */
#ifndef INTERACTION_STATUS_H
#define INTERACTION_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define IA_MUST_CHECK __attribute__((warn_unused_result))
#else
#define IA_MUST_CHECK
#endif

/* One enum for both ends and the wire; the original's numbers are kept. */
typedef enum ia_code {
  IA_OK = 0,
  IA_SHUTTING_DOWN = 101,
  IA_CHANNEL_NOT_FOUND = 201,
  IA_CHANNEL_INVALID = 202,
  IA_TOKEN_NOT_FOUND = 301,
  IA_TOKEN_INVALID = 302,
  IA_ALREADY_CONNECTED = 501,
  IA_NOT_CONNECTED = 502,
  IA_CONNECTION_REFUSED = 503,
  IA_DISCONNECTION_REFUSED = 504,
  IA_TASK_ALREADY_EXIST = 601,
  IA_TASK_REFUSED = 602,
  IA_TASK_FAILED = 603,
  IA_TASK_ERROR = 604,
  IA_QUEUE_FULL = 605,
  IA_UNKNOWN_METHOD = 606,
  IA_DEADLINE_EXCEEDED = 607,
  IA_CANCELLED = 608,
  IA_CONNECTION_LOST = 701,
  IA_TIMEOUT = 702,
  IA_FRAME_TOO_LARGE = 703,
  IA_PROTOCOL_ERROR = 704,
  IA_VERSION_UNSUPPORTED = 705,
  /* Local failures that never travel on the wire. */
  IA_IO_ERROR = 706,         /* a socket call failed (message has errno text) */
  IA_INVALID_ARGUMENT = 707, /* the caller passed something unusable */
  IA_NO_MEMORY = 708,
} ia_code;

/*
 * The name and a one-sentence description of a code, e.g.
 * "TASK_ALREADY_EXIST: the slave's task slot is busy". Never NULL; unknown
 * codes give "UNKNOWN: unknown status code". The string is static.
 */
const char *ia_strerror(int code);

/* The bare name of a code ("TASK_ALREADY_EXIST"); static, never NULL. */
const char *ia_code_name(int code);

#define IA_ERROR_MESSAGE_MAX 256

/* The default heartbeat of both ends (ia_master_config, ia_slave_config):
 * a Ping a second, and a peer silent for 5 s is lost. Five missed beats ride out a loaded machine's
 * scheduling and a few lost packets (TCP's retransmissions start at 200 ms), and a dead peer is still noticed
 * within seconds, not the kernel's minutes. */
#define IA_HEARTBEAT_DEFAULT_MS 1000u
#define IA_HEARTBEAT_TOLERANCE_DEFAULT_MS 5000u

/*
 * What went wrong. `message` is always NUL-terminated (truncated if longer).
 * `data` is owned by the error: malloc'd, released by ia_error_clear().
 * Initialise with IA_ERROR_INIT or ia_error_clear() before first use.
 */
typedef struct ia_error {
  ia_code code;
  char message[IA_ERROR_MESSAGE_MAX];
  uint8_t *data;
  size_t data_len;
} ia_error;

#define IA_ERROR_INIT                                                                                        \
  { IA_OK, {0}, NULL, 0 }

/* Releases the error's data and resets it to IA_OK. NULL is allowed. */
void ia_error_clear(ia_error *err);

/* Logging. The default handler writes to stderr; the level comes from the
 * program (ia_log_set_level) or from the IA_LOG environment variable
 * (debug, info, warn, error, off) read at the first log call. */
typedef enum ia_log_level {
  IA_LOG_DEBUG = 0,
  IA_LOG_INFO = 1,
  IA_LOG_WARN = 2,
  IA_LOG_ERROR = 3,
  IA_LOG_OFF = 4,
} ia_log_level;

/* The histograms of both ends' statistics (a slave's handler durations, a
 * master's task latencies) share these bounds: IA_STATS_BUCKETS upper
 * bounds from 100 us to 60 s, and one more bucket over all of them. */
#define IA_STATS_BUCKETS 12
/* Bucket `bucket`'s upper bound in seconds; 0 out of range. */
double ia_stats_bucket_le(int bucket);

typedef void (*ia_log_fn)(ia_log_level level, const char *message, void *user);

/* Replaces the log handler (NULL restores the default). Thread-safe. */
void ia_log_set_handler(ia_log_fn fn, void *user);
/* Sets the lowest level that is logged; overrides IA_LOG. Thread-safe. */
void ia_log_set_level(ia_log_level level);
ia_log_level ia_log_get_level(void);

/* ---- command-line text, as every Interaction program reads it ---- */

/* Parses a whole decimal number in [0, max] into *out: no sign, no space,
 * nothing after it. False (and *out left alone) otherwise. */
bool ia_parse_uint(const char *text, unsigned long max, unsigned long *out);
/* Parses "HOST:PORT" ("[v6 address]:PORT" for IPv6; PORT 1..65535) into
 * host (NUL-terminated, at most host_cap bytes with the NUL) and *port.
 * False (and both left alone) if it is not that form. */
bool ia_hostport_parse(const char *addr, char *host, size_t host_cap, uint16_t *port);

#ifdef __cplusplus
}
#endif
#endif
