/* Status codes, ia_error, task status names and the logging hook. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "interaction/interaction.h"
/* ia__log() is the runtime's internal logger: this unit test drives it
 * directly, since no public function emits a log line on demand. */
#include "runtime/runtime-internal.h"

static const struct {
  int code;
  const char *name;
} all_codes[] = {
    {IA_OK, "OK"},
    {IA_SHUTTING_DOWN, "SHUTTING_DOWN"},
    {IA_CHANNEL_NOT_FOUND, "CHANNEL_NOT_FOUND"},
    {IA_CHANNEL_INVALID, "CHANNEL_INVALID"},
    {IA_TOKEN_NOT_FOUND, "TOKEN_NOT_FOUND"},
    {IA_TOKEN_INVALID, "TOKEN_INVALID"},
    {IA_ALREADY_CONNECTED, "ALREADY_CONNECTED"},
    {IA_NOT_CONNECTED, "NOT_CONNECTED"},
    {IA_CONNECTION_REFUSED, "CONNECTION_REFUSED"},
    {IA_DISCONNECTION_REFUSED, "DISCONNECTION_REFUSED"},
    {IA_TASK_ALREADY_EXIST, "TASK_ALREADY_EXIST"},
    {IA_TASK_REFUSED, "TASK_REFUSED"},
    {IA_TASK_FAILED, "TASK_FAILED"},
    {IA_TASK_ERROR, "TASK_ERROR"},
    {IA_QUEUE_FULL, "QUEUE_FULL"},
    {IA_UNKNOWN_METHOD, "UNKNOWN_METHOD"},
    {IA_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"},
    {IA_CANCELLED, "CANCELLED"},
    {IA_CONNECTION_LOST, "CONNECTION_LOST"},
    {IA_TIMEOUT, "TIMEOUT"},
    {IA_FRAME_TOO_LARGE, "FRAME_TOO_LARGE"},
    {IA_PROTOCOL_ERROR, "PROTOCOL_ERROR"},
    {IA_VERSION_UNSUPPORTED, "VERSION_UNSUPPORTED"},
    {IA_IO_ERROR, "IO_ERROR"},
    {IA_INVALID_ARGUMENT, "INVALID_ARGUMENT"},
    {IA_NO_MEMORY, "NO_MEMORY"},
};
#define N_CODES (sizeof all_codes / sizeof all_codes[0])

Test(status, every_code_has_its_name_and_a_sentence, .timeout = 30) {
  /* The wire numbers are a contract with other implementations. */
  cr_assert_eq(IA_TASK_ALREADY_EXIST, 601);
  cr_assert_eq(IA_CHANNEL_INVALID, 202);
  cr_assert_eq(IA_PROTOCOL_ERROR, 704);
  for (size_t i = 0; i < N_CODES; i++) {
    const char *name = all_codes[i].name;
    size_t n = strlen(name);
    cr_assert_str_eq(ia_code_name(all_codes[i].code), name, "code %d", all_codes[i].code);
    const char *text = ia_strerror(all_codes[i].code);
    cr_assert_not_null(text);
    cr_assert(strncmp(text, name, n) == 0 && text[n] == ':' && text[n + 1] == ' ' && strlen(text) > n + 2,
              "ia_strerror(%d) = \"%s\" is not \"%s: <sentence>\"", all_codes[i].code, text, name);
    /* No two codes share a sentence. */
    for (size_t j = 0; j < i; j++)
      cr_assert_str_neq(text, ia_strerror(all_codes[j].code), "codes %d and %d", all_codes[i].code,
                        all_codes[j].code);
  }
}

Test(status, unknown_codes_are_named_unknown, .timeout = 30) {
  const int unknown[] = {-1, 1, 100, 600, 609, 709, 9999};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    cr_assert_str_eq(ia_code_name(unknown[i]), "UNKNOWN", "code %d", unknown[i]);
    cr_assert_str_eq(ia_strerror(unknown[i]), "UNKNOWN: unknown status code", "code %d", unknown[i]);
  }
}

Test(status, error_clear_releases_data_and_resets, .timeout = 30) {
  ia_error err = IA_ERROR_INIT;
  err.code = IA_TASK_FAILED;
  strcpy(err.message, "something failed");
  err.data = malloc(32);
  cr_assert_not_null(err.data);
  memset(err.data, 0xab, 32);
  err.data_len = 32;

  ia_error_clear(&err); /* under the sanitizer build a leak here is reported */
  cr_assert_eq(err.code, IA_OK);
  cr_assert_eq(err.message[0], '\0', "message not reset: \"%s\"", err.message);
  cr_assert_null(err.data);
  cr_assert_eq(err.data_len, 0);

  ia_error_clear(&err); /* clearing twice is harmless */
  ia_error_clear(NULL); /* NULL is allowed */
  cr_assert_eq(err.code, IA_OK);
}

Test(task_status, names_and_terminal_states, .timeout = 30) {
  const struct {
    ia_status status;
    const char *name_part;
    bool terminal;
  } all[] = {
      {IA_STATUS_IDLE, "IDLE", false},          {IA_STATUS_STARTING, "STARTING", false},
      {IA_STATUS_STARTED, "STARTED", false},    {IA_STATUS_START_FAILED, "START_FAILED", true},
      {IA_STATUS_COMPLETED, "COMPLETED", true}, {IA_STATUS_FAILED, "FAILED", true},
      {IA_STATUS_LOST, "LOST", true},           {IA_STATUS_TIMED_OUT, "TIMED_OUT", true},
      {IA_STATUS_CANCELLED, "CANCELLED", true},
  };
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    const char *name = ia_status_name(all[i].status);
    cr_assert_not_null(name);
    cr_assert(strstr(name, all[i].name_part) != NULL, "ia_status_name(%d) = \"%s\"", (int)all[i].status,
              name);
    cr_assert_eq(ia_status_is_terminal(all[i].status), all[i].terminal, "%s", name);
  }
}

/* ---- logging ---- */

typedef struct log_record {
  pthread_mutex_t mu;
  int n;
  ia_log_level levels[16];
  char messages[16][64];
} log_record;

static log_record records = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void record_log(ia_log_level level, const char *message, void *user) {
  log_record *r = user;
  pthread_mutex_lock(&r->mu);
  if (r->n < 16) {
    r->levels[r->n] = level;
    strncpy(r->messages[r->n], message, sizeof r->messages[0] - 1);
  }
  r->n++;
  pthread_mutex_unlock(&r->mu);
}

static int record_count(void) {
  pthread_mutex_lock(&records.mu);
  int n = records.n;
  pthread_mutex_unlock(&records.mu);
  return n;
}

Test(log, handler_receives_the_set_level_and_above, .timeout = 30) {
  ia_log_set_handler(record_log, &records);
  ia_log_set_level(IA_LOG_WARN);
  cr_assert_eq(ia_log_get_level(), IA_LOG_WARN);

  ia__log(IA_LOG_DEBUG, "debug %d", 1);
  ia__log(IA_LOG_INFO, "info %d", 2);
  ia__log(IA_LOG_WARN, "warn %d", 3);
  ia__log(IA_LOG_ERROR, "error %d", 4);
  cr_assert_eq(record_count(), 2, "expected only WARN and ERROR, got %d messages", record_count());
  cr_assert_eq(records.levels[0], IA_LOG_WARN);
  cr_assert_str_eq(records.messages[0], "warn 3");
  cr_assert_eq(records.levels[1], IA_LOG_ERROR);
  cr_assert_str_eq(records.messages[1], "error 4");

  ia_log_set_level(IA_LOG_OFF);
  ia__log(IA_LOG_ERROR, "silenced");
  cr_assert_eq(record_count(), 2, "OFF must silence even ERROR");

  ia_log_set_level(IA_LOG_DEBUG);
  ia__log(IA_LOG_DEBUG, "now debug");
  cr_assert_eq(record_count(), 3);
  cr_assert_eq(records.levels[2], IA_LOG_DEBUG);
  cr_assert_str_eq(records.messages[2], "now debug");

  /* NULL restores the default handler: nothing more reaches ours. */
  ia_log_set_handler(NULL, NULL);
  ia__log(IA_LOG_ERROR, "to stderr (expected in the test output)");
  cr_assert_eq(record_count(), 3);
}

Test(log, level_comes_from_IA_LOG_env, .timeout = 30) {
  /* Each criterion test runs in its own process, so this is the first log
   * call of the process and IA_LOG is read now. */
  setenv("IA_LOG", "error", 1);
  ia_log_set_handler(record_log, &records);
  ia__log(IA_LOG_WARN, "below the env level");
  ia__log(IA_LOG_ERROR, "at the env level");
  cr_assert_eq(ia_log_get_level(), IA_LOG_ERROR);
  cr_assert_eq(record_count(), 1, "IA_LOG=error: got %d messages", record_count());
  cr_assert_str_eq(records.messages[0], "at the env level");

  /* ia_log_set_level overrides IA_LOG. */
  ia_log_set_level(IA_LOG_INFO);
  ia__log(IA_LOG_INFO, "info after override");
  cr_assert_eq(record_count(), 2);
  ia_log_set_handler(NULL, NULL);
}
