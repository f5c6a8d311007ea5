/*
 * coordinator: the master of the learner example. It drives several
 * learner-slave processes the way DI-engine's coordinator drives its
 * learners, through the typed stubs generated from learner.proto.
 *
 *   coordinator [--channel C] [--rounds R] [--batch-size B] [--lr X] HOST:PORT...
 *
 * It connects to every learner (learner-0, learner-1, ...), then:
 *   1. fans Start out to all of them at once (seed i for learner i);
 *   2. runs R rounds, each a fan-out of GetData to every learner and then a
 *      fan-out of Learn, where learner i trains on the batch that learner
 *      (i + round) mod N produced: the coordinator moves the data around, as
 *      it would between collectors and learners;
 *   3. merges each round's results (mean loss, mean of each gradient norm,
 *      mean of each stat) and prints them;
 *   4. disconnects every learner.
 * Every fan-out starts one task per learner with ding_learner_<method>_start()
 * and joins them all, so the learners work at the same time.
 *
 * Exit status: 0 if every task completed and the mean loss of the last round
 * is below the first's; 1 otherwise; 2 for a usage error.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "interaction/interaction.h"
#include "learner.ia.h"

#define CONNECT_TIMEOUT_MS 5000
#define JOIN_TIMEOUT_MS 30000
#define MAX_STATS 32

typedef struct learner {
  char host[256];
  uint16_t port;
  char name[32];
  ia_conn *conn;
  ia_task *task;          /* the fan-out's task on this learner */
  Ding__DataBatch *batch; /* this round's GetData reply */
} learner;

typedef struct options {
  uint32_t channel;
  uint32_t rounds;
  uint32_t batch_size;
  const char *lr;
} options;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void print_error(const char *who, const char *what, const ia_error *err) {
  fprintf(stderr, "coordinator: %s: %s failed: %d %s: %s\n", who, what, (int)err->code,
          ia_code_name(err->code), err->message[0] ? err->message : "(no message)");
}

/* Waits for the task of every learner (all already started) and reports the
 * ones that did not complete; frees none. True if all completed. */
static bool join_all(learner *ls, int n, const char *what) {
  bool ok = true;
  for (int i = 0; i < n; i++) {
    if (ls[i].task == NULL) {
      fprintf(stderr, "coordinator: %s: %s: out of memory\n", ls[i].name, what);
      ok = false;
      continue;
    }
    if (ia_task_join(ls[i].task, JOIN_TIMEOUT_MS) != IA_OK) {
      fprintf(stderr, "coordinator: %s: %s did not end within %d ms\n", ls[i].name, what, JOIN_TIMEOUT_MS);
      ok = false;
    } else if (ia_task_status(ls[i].task) != IA_STATUS_COMPLETED) {
      print_error(ls[i].name, what, ia_task_error(ls[i].task));
      ok = false;
    }
  }
  return ok;
}

static void free_tasks(learner *ls, int n) {
  for (int i = 0; i < n; i++) {
    ia_task_free(ls[i].task);
    ls[i].task = NULL;
  }
}

/* ---- Start ---- */

static bool start_all(learner *ls, int n, const options *opt) {
  char *paths[] = {"replay/part-0", "replay/part-1"};
  Ding__StartTask__HyperEntry lr = DING__START_TASK__HYPER_ENTRY__INIT;
  Ding__StartTask__HyperEntry dim = DING__START_TASK__HYPER_ENTRY__INIT;
  lr.key = "lr";
  lr.value = (char *)opt->lr;
  dim.key = "obs_dim";
  dim.value = "4";
  Ding__StartTask__HyperEntry *hyper[] = {&lr, &dim};

  printf("[start] Start on %d learner(s): policy linear, batch_size %" PRIu32 ", lr %s\n", n, opt->batch_size,
         opt->lr);
  for (int i = 0; i < n; i++) {
    Ding__StartTask req = DING__START_TASK__INIT;
    req.policy = "linear";
    req.batch_size = opt->batch_size;
    req.n_data_paths = 2;
    req.data_paths = paths;
    req.n_hyper = 2;
    req.hyper = hyper;
    req.seed = (uint64_t)i + 1;
    /* The request is packed at once: it may go out of scope now. */
    ls[i].task = ding_learner_start_start(ls[i].conn, &req, NULL);
  }
  bool ok = join_all(ls, n, "Start");
  for (int i = 0; ok && i < n; i++) {
    Ding__StartResult *res = NULL;
    if (ding_learner_start_reply(ls[i].task, &res) != IA_OK) {
      fprintf(stderr, "coordinator: %s: the StartResult does not decode\n", ls[i].name);
      ok = false;
      break;
    }
    printf("    %s (%s:%" PRIu16 "): learner \"%s\", %" PRIu32 " parameters, %zu data path(s)\n", ls[i].name,
           ls[i].host, ls[i].port, res->learner, res->n_params, res->n_data_paths);
    ding__start_result__free_unpacked(res, NULL);
  }
  free_tasks(ls, n);
  return ok;
}

/* ---- one round: GetData everywhere, then Learn everywhere ---- */

typedef struct stat_mean {
  char key[32];
  double sum;
  int count;
} stat_mean;

/* What a round's LearnResults average to. */
typedef struct merged {
  double loss;
  int n_grad;
  double grad[8];
  int grad_count[8];
  int n_stats;
  stat_mean stats[MAX_STATS];
} merged;

static void merge(merged *m, const Ding__LearnResult *res) {
  m->loss += res->loss;
  for (size_t g = 0; g < res->n_grad_norms && g < 8; g++) {
    m->grad[g] += res->grad_norms[g];
    m->grad_count[g]++;
    if ((int)g + 1 > m->n_grad) m->n_grad = (int)g + 1;
  }
  for (size_t s = 0; s < res->n_stats; s++) {
    const Ding__LearnResult__StatsEntry *e = res->stats[s];
    int k = 0;
    while (k < m->n_stats && strcmp(m->stats[k].key, e->key) != 0)
      k++;
    if (k == m->n_stats) {
      if (m->n_stats == MAX_STATS) continue; /* more keys than a summary line holds */
      snprintf(m->stats[k].key, sizeof m->stats[k].key, "%s", e->key);
      m->n_stats++;
    }
    m->stats[k].sum += e->value;
    m->stats[k].count++;
  }
}

static int compare_stats(const void *a, const void *b) {
  return strcmp(((const stat_mean *)a)->key, ((const stat_mean *)b)->key);
}

/* Runs round `round` (1-based); *loss gets the mean loss. */
static bool run_round(learner *ls, int n, uint32_t round, uint32_t rounds, double *loss) {
  double t0 = now_ms();
  for (int i = 0; i < n; i++) {
    Ding__DataRequest req = DING__DATA_REQUEST__INIT;
    req.iter = round;
    ls[i].task = ding_learner_get_data_start(ls[i].conn, &req, NULL);
  }
  bool ok = join_all(ls, n, "GetData");
  for (int i = 0; ok && i < n; i++) {
    if (ding_learner_get_data_reply(ls[i].task, &ls[i].batch) != IA_OK) {
      fprintf(stderr, "coordinator: %s: the DataBatch does not decode\n", ls[i].name);
      ok = false;
    }
  }
  free_tasks(ls, n);

  size_t samples = 0;
  if (ok) {
    for (int i = 0; i < n; i++) {
      const Ding__DataBatch *from = ls[(i + (int)(round % (uint32_t)n)) % n].batch;
      Ding__LearnTask req = DING__LEARN_TASK__INIT;
      req.iter = round;
      req.n_batch = from->n_samples;
      req.batch = from->samples; /* borrowed from the DataBatch: only read */
      samples += from->n_samples;
      ls[i].task = ding_learner_learn_start(ls[i].conn, &req, NULL);
    }
    ok = join_all(ls, n, "Learn");
  }

  merged m = {0};
  for (int i = 0; ok && i < n; i++) {
    Ding__LearnResult *res = NULL;
    if (ding_learner_learn_reply(ls[i].task, &res) != IA_OK) {
      fprintf(stderr, "coordinator: %s: the LearnResult does not decode\n", ls[i].name);
      ok = false;
      break;
    }
    merge(&m, res);
    ding__learn_result__free_unpacked(res, NULL);
  }
  free_tasks(ls, n);
  for (int i = 0; i < n; i++) {
    if (ls[i].batch != NULL) ding__data_batch__free_unpacked(ls[i].batch, NULL);
    ls[i].batch = NULL;
  }
  if (!ok) return false;

  *loss = m.loss / n;
  printf("[round %" PRIu32 "/%" PRIu32 "] %d learner(s), %zu samples, %.1f ms: loss %.4f  grad_norms [",
         round, rounds, n, samples, now_ms() - t0, *loss);
  for (int g = 0; g < m.n_grad; g++)
    printf("%s%.4f", g ? " " : "", m.grad[g] / m.grad_count[g]);
  printf("]  stats {");
  qsort(m.stats, (size_t)m.n_stats, sizeof m.stats[0], compare_stats);
  for (int k = 0; k < m.n_stats; k++)
    printf("%s%s=%.4g", k ? " " : "", m.stats[k].key, m.stats[k].sum / m.stats[k].count);
  printf("}\n");
  return true;
}

/* ---- command line ---- */

static void usage(FILE *out) {
  fprintf(out, "usage: coordinator [--channel C] [--rounds R] [--batch-size B] [--lr X] HOST:PORT...\n"
               "\n"
               "  --channel C      channel of the learners (default 0)\n"
               "  --rounds R       rounds of GetData + Learn (default 5)\n"
               "  --batch-size B   samples per GetData (default 64)\n"
               "  --lr X           the learners' learning rate (default 0.5)\n"
               "  --help           this text\n"
               "\n"
               "Connects to every learner-slave given, starts them, runs the rounds on all of\n"
               "them at once and prints each round's merged loss and stats. Exits 0 if every\n"
               "task completed and the loss went down, 1 otherwise, 2 on a usage error.\n");
}

/* Fills `opt` from the command line. Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, options *opt) {
  static const struct option long_options[] = {
      {"channel", required_argument, NULL, 'c'},
      {"rounds", required_argument, NULL, 'r'},
      {"batch-size", required_argument, NULL, 'b'},
      {"lr", required_argument, NULL, 'l'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int c;
  unsigned long v;
  while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
    switch (c) {
    case 'c':
      if (!ia_parse_uint(optarg, UINT32_MAX, &v)) goto bad_value;
      opt->channel = (uint32_t)v;
      break;
    case 'r':
      if (!ia_parse_uint(optarg, 100000, &v) || v == 0) goto bad_value;
      opt->rounds = (uint32_t)v;
      break;
    case 'b':
      if (!ia_parse_uint(optarg, 65536, &v) || v == 0) goto bad_value;
      opt->batch_size = (uint32_t)v;
      break;
    case 'l':
      opt->lr = optarg; /* the learners check it */
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind == argc) {
    fprintf(stderr, "coordinator: no learner given\n");
    usage(stderr);
    return 2;
  }
  return -1;

bad_value:
  fprintf(stderr, "coordinator: invalid value '%s'\n", optarg);
  usage(stderr);
  return 2;
}

int main(int argc, char **argv) {
  /* Show each round as it happens, even when stdout is a pipe or a file. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  options opt = {.channel = 0, .rounds = 5, .batch_size = 64, .lr = "0.5"};
  int rc = parse_args(argc, argv, &opt);
  if (rc >= 0) return rc;
  int n = argc - optind;
  learner *ls = calloc((size_t)n, sizeof *ls);
  if (ls == NULL) {
    fprintf(stderr, "coordinator: out of memory\n");
    return 1;
  }
  for (int i = 0; i < n; i++) {
    if (!ia_hostport_parse(argv[optind + i], ls[i].host, sizeof ls[i].host, &ls[i].port)) {
      fprintf(stderr, "coordinator: '%s' is not HOST:PORT\n", argv[optind + i]);
      usage(stderr);
      free(ls);
      return 2;
    }
    snprintf(ls[i].name, sizeof ls[i].name, "learner-%d", i);
  }

  ia_master_config config;
  ia_master_config_init(&config);
  config.name = "coordinator";
  config.channel = opt.channel;
  ia_master *master = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code code = ia_master_new(&config, &master, &err);
  if (code == IA_OK) code = ia_master_start(master, &err);
  if (code != IA_OK) {
    print_error("coordinator", "starting the master", &err);
    ia_error_clear(&err);
    ia_master_free(master);
    free(ls);
    return 1;
  }

  bool ok = true;
  printf("[connect] %d learner(s) on channel %" PRIu32 "\n", n, opt.channel);
  for (int i = 0; i < n && ok; i++) {
    code = ia_master_connect(master, ls[i].name, ls[i].host, ls[i].port, NULL, 0, CONNECT_TIMEOUT_MS,
                             &ls[i].conn, &err);
    if (code != IA_OK) {
      print_error(ls[i].name, "connect", &err);
      ls[i].conn = NULL;
      ok = false;
    }
    ia_error_clear(&err);
  }

  double first_loss = 0, last_loss = 0;
  if (ok) ok = start_all(ls, n, &opt);
  for (uint32_t r = 1; ok && r <= opt.rounds; r++) {
    ok = run_round(ls, n, r, opt.rounds, &last_loss);
    if (r == 1) first_loss = last_loss;
  }
  if (ok) {
    printf("[done] mean loss %.4f -> %.4f over %" PRIu32 " round(s)\n", first_loss, last_loss, opt.rounds);
    if (opt.rounds > 1 && !(last_loss < first_loss)) {
      fprintf(stderr, "coordinator: the loss did not go down\n");
      ok = false;
    }
  }

  int disconnected = 0;
  for (int i = 0; i < n; i++) {
    if (ls[i].conn == NULL) continue;
    code = ia_conn_disconnect(ls[i].conn, NULL, 0, CONNECT_TIMEOUT_MS, &err);
    if (code == IA_OK) {
      disconnected++;
    } else {
      print_error(ls[i].name, "disconnect", &err);
      ok = false;
    }
    ia_error_clear(&err);
    ia_conn_free(ls[i].conn);
  }
  printf("[disconnect] %d learner(s) disconnected\n", disconnected);
  ia_master_free(master);
  free(ls);
  printf("coordinator: %s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
