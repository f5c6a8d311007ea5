/*
 * learner-slave: one learner of the learner example, serving ding.Learner
 * (learner.proto) through its generated typed stubs until SIGINT or SIGTERM.
 *
 *   learner-slave --host H --port P --channel C [--grace-ms N] [--name NAME]
 *
 * Like sum-slave, once it accepts connections it prints exactly one line,
 * `listening on H:P` with the port actually bound (useful with --port 0), and
 * flushes stdout, so that a script can wait for that line. Both get their
 * command line from the library's ia_slave_main() (slave/main.c).
 *
 * The model is deliberately tiny, so that the example stays about Interaction:
 * a linear regression of a sample's reward on its observation, trained by one
 * gradient step per Learn. GetData makes samples from a fixed "environment"
 * (reward = w* . obs + b* + noise) that every learner shares, seeded by Start,
 * so a coordinator may hand any learner's data to any other.
 *
 *   ding.Learner/Start    StartTask -> StartResult: (re)builds the model; fails with
 *                         TASK_FAILED for an unknown policy or a bad hyper-parameter
 *   ding.Learner/GetData  DataRequest -> DataBatch
 *   ding.Learner/Learn    LearnTask -> LearnResult{loss, grad_norms, stats}
 *   GetData or Learn before Start, or samples of the wrong size, fail with
 *   TASK_FAILED and a LearnerFail saying why.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interaction/interaction.h"
#include "learner.ia.h"

#define MAX_OBS_DIM 64
#define MAX_BATCH 65536
#define DEFAULT_BATCH 32
#define DEFAULT_OBS_DIM 4
#define DEFAULT_LR 0.1f

/* The learner's state. Tasks of one slave run one at a time in its default
 * mode, but the handlers lock anyway so that they stay right in any mode. */
typedef struct learner {
  pthread_mutex_t mu;
  const char *name;
  bool started;
  uint32_t batch_size;
  uint32_t obs_dim;
  float lr;
  uint64_t rng;            /* xorshift64* state for GetData */
  float w[MAX_OBS_DIM], b; /* the model */
  uint32_t steps;
} learner;

/* ---- the environment every learner shares ---- */

static float true_weight(uint32_t j) {
  return (j % 2 ? -1.0f : 1.0f) * (0.5f + 0.25f * (float)j);
}
#define TRUE_BIAS 0.3f
#define NOISE 0.05f

static uint64_t next_random(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* A float uniform in [-1, 1). */
static float uniform(uint64_t *state) {
  return (float)(next_random(state) >> 40) / (float)(1u << 23) - 1.0f;
}

/* ---- failures ---- */

/* Ending a task fails only if it already had an outcome or memory ran out;
 * the master hears of the task either way (as TASK_ERROR at worst). */
static void ended(ia_code rc, const ia_task_ctx *task) {
  if (rc != IA_OK)
    fprintf(stderr, "learner-slave: ending %s: %s\n", ia_task_ctx_method(task), ia_strerror(rc));
}

/* Fails the task on purpose (603) with `message`, which also travels as the
 * LearnerFail's reason. */
static void fail_task(ia_task_ctx *task, const char *message) {
  Ding__LearnerFail why = DING__LEARNER_FAIL__INIT;
  why.reason = (char *)message;
  ended(ia_pb_fail(task, IA_TASK_FAILED, message, &why.base), task);
}

/* Parses the whole of `text` as a float in (lo, hi]; false on anything else. */
static bool parse_float(const char *text, float lo, float hi, float *out) {
  char *end;
  errno = 0;
  float v = strtof(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !(v > lo && v <= hi)) return false;
  *out = v;
  return true;
}

/* ---- handlers ---- */

static void handle_start(ia_task_ctx *task, const Ding__StartTask *req, void *user) {
  learner *l = user;
  char message[IA_ERROR_MESSAGE_MAX];
  if (strcmp(req->policy, "linear") != 0) {
    snprintf(message, sizeof message, "unknown policy '%.64s' (this learner knows 'linear')", req->policy);
    fail_task(task, message);
    return;
  }
  float lr = DEFAULT_LR, dim = DEFAULT_OBS_DIM;
  for (size_t i = 0; i < req->n_hyper; i++) {
    const char *key = req->hyper[i]->key, *value = req->hyper[i]->value;
    bool ok = true;
    if (strcmp(key, "lr") == 0)
      ok = parse_float(value, 0.0f, 1.0f, &lr);
    else if (strcmp(key, "obs_dim") == 0)
      ok = parse_float(value, 0.0f, MAX_OBS_DIM, &dim) && dim == floorf(dim);
    /* Unknown hyper-parameters are ignored, as a real learner ignores
     * settings meant for other parts. */
    if (!ok) {
      snprintf(message, sizeof message, "bad hyper-parameter %.32s=%.32s", key, value);
      fail_task(task, message);
      return;
    }
  }
  if (req->batch_size > MAX_BATCH) {
    snprintf(message, sizeof message, "batch_size %" PRIu32 " is over %d", req->batch_size, MAX_BATCH);
    fail_task(task, message);
    return;
  }

  pthread_mutex_lock(&l->mu);
  l->started = true;
  l->batch_size = req->batch_size ? req->batch_size : DEFAULT_BATCH;
  l->obs_dim = (uint32_t)dim;
  l->lr = lr;
  l->rng = req->seed ? req->seed : 0x9E3779B97F4A7C15ULL; /* xorshift needs a non-zero state */
  memset(l->w, 0, sizeof l->w);
  l->b = 0.0f;
  l->steps = 0;
  Ding__StartResult res = DING__START_RESULT__INIT;
  res.learner = (char *)l->name;
  res.n_params = l->obs_dim + 1;
  pthread_mutex_unlock(&l->mu);
  /* A real learner would open its data here; this one accepts every path. */
  res.n_data_paths = req->n_data_paths;
  res.data_paths = req->data_paths;
  ended(ding_learner_start_reply_ok(task, &res), task);
}

static void handle_get_data(ia_task_ctx *task, const Ding__DataRequest *req, void *user) {
  learner *l = user;
  pthread_mutex_lock(&l->mu);
  if (!l->started) {
    pthread_mutex_unlock(&l->mu);
    fail_task(task, "GetData before Start");
    return;
  }
  uint32_t n = req->batch_size ? req->batch_size : l->batch_size;
  if (n > MAX_BATCH) n = MAX_BATCH;
  uint32_t dim = l->obs_dim;
  /* One allocation each for the samples, their pointers and their floats. */
  Ding__DataBatch__Sample *samples = calloc(n ? n : 1, sizeof *samples);
  Ding__DataBatch__Sample **ptrs = calloc(n ? n : 1, sizeof *ptrs);
  float *obs = calloc((size_t)(n ? n : 1) * dim, sizeof *obs);
  if (samples == NULL || ptrs == NULL || obs == NULL) {
    pthread_mutex_unlock(&l->mu);
    ended(ia_task_ctx_fail(task, IA_TASK_ERROR, "out of memory for the batch", NULL, 0), task);
    goto out;
  }
  for (uint32_t i = 0; i < n; i++) {
    Ding__DataBatch__Sample *s = &samples[i];
    ding__data_batch__sample__init(s);
    s->n_obs = dim;
    s->obs = obs + (size_t)i * dim;
    float reward = TRUE_BIAS;
    for (uint32_t j = 0; j < dim; j++) {
      s->obs[j] = uniform(&l->rng);
      reward += true_weight(j) * s->obs[j];
    }
    s->reward = reward + NOISE * uniform(&l->rng);
    s->action = (int32_t)(next_random(&l->rng) % 4);
    ptrs[i] = s;
  }
  pthread_mutex_unlock(&l->mu);

  Ding__DataBatch batch = DING__DATA_BATCH__INIT;
  batch.iter = req->iter;
  batch.n_samples = n;
  batch.samples = ptrs;
  ended(ding_learner_get_data_reply_ok(task, &batch), task);
out:
  free(obs);
  free(ptrs);
  free(samples);
}

static void handle_learn(ia_task_ctx *task, const Ding__LearnTask *req, void *user) {
  learner *l = user;
  char message[IA_ERROR_MESSAGE_MAX];
  pthread_mutex_lock(&l->mu);
  if (!l->started) {
    pthread_mutex_unlock(&l->mu);
    fail_task(task, "Learn before Start");
    return;
  }
  uint32_t dim = l->obs_dim;
  for (size_t i = 0; i < req->n_batch; i++) {
    if (req->batch[i]->n_obs != dim) {
      pthread_mutex_unlock(&l->mu);
      snprintf(message, sizeof message, "sample %zu has %zu obs, this learner's obs_dim is %" PRIu32, i,
               req->batch[i]->n_obs, dim);
      fail_task(task, message);
      return;
    }
  }
  if (req->n_batch == 0) {
    pthread_mutex_unlock(&l->mu);
    fail_task(task, "Learn on an empty batch");
    return;
  }

  /* One step of gradient descent on the mean squared error. */
  double loss = 0, grad_w[MAX_OBS_DIM] = {0}, grad_b = 0, reward_sum = 0;
  for (size_t i = 0; i < req->n_batch; i++) {
    const Ding__DataBatch__Sample *s = req->batch[i];
    double err = l->b - s->reward;
    for (uint32_t j = 0; j < dim; j++)
      err += l->w[j] * s->obs[j];
    loss += err * err;
    for (uint32_t j = 0; j < dim; j++)
      grad_w[j] += 2 * err * s->obs[j];
    grad_b += 2 * err;
    reward_sum += s->reward;
  }
  double n = (double)req->n_batch, norm_w = 0;
  for (uint32_t j = 0; j < dim; j++) {
    grad_w[j] /= n;
    norm_w += grad_w[j] * grad_w[j];
    l->w[j] -= l->lr * (float)grad_w[j];
  }
  grad_b /= n;
  l->b -= l->lr * (float)grad_b;
  double param_norm = l->b * l->b;
  for (uint32_t j = 0; j < dim; j++)
    param_norm += l->w[j] * l->w[j];
  l->steps++;
  float lr = l->lr;
  pthread_mutex_unlock(&l->mu);

  Ding__LearnResult res = DING__LEARN_RESULT__INIT;
  res.loss = (float)(loss / n);
  float grad_norms[2] = {(float)sqrt(norm_w), (float)fabs(grad_b)};
  res.n_grad_norms = 2;
  res.grad_norms = grad_norms;
  static const char *const keys[] = {"lr", "mean_reward", "param_norm", "samples"};
  const float values[] = {lr, (float)(reward_sum / n), (float)sqrt(param_norm), (float)n};
  Ding__LearnResult__StatsEntry entries[4], *entry_ptrs[4];
  for (size_t i = 0; i < 4; i++) {
    ding__learn_result__stats_entry__init(&entries[i]);
    entries[i].key = (char *)keys[i];
    entries[i].value = values[i];
    entry_ptrs[i] = &entries[i];
  }
  res.n_stats = 4;
  res.stats = entry_ptrs;
  ended(ding_learner_learn_reply_ok(task, &res), task);
}

static const ding_learner_handlers handlers = {
    .start = handle_start,
    .get_data = handle_get_data,
    .learn = handle_learn,
};

/* Registers the handlers; called by ia_slave_main() before the slave
 * starts. The generated ding_learner_serve() registers one handler per method,
 * each given `state`, which outlives the slave. */
static ia_code serve(ia_slave *slave, const ia_slave_config *config, void *user) {
  learner *state = user;
  state->name = config->name;
  return ding_learner_serve(slave, &handlers, state);
}

int main(int argc, char **argv) {
  learner state = {0};
  pthread_mutex_init(&state.mu, NULL);
  const ia_slave_main_spec spec = {
      .program = "learner-slave",
      .default_name = "learner",
      .name_help = "name sent to the master and in StartResult",
      .about = "Serves ding.Learner (Start, GetData, Learn). Prints `listening on H:P` once it\n"
               "accepts connections; serves until SIGINT or SIGTERM.\n",
      .serve = serve,
      .user = &state,
  };
  int rc = ia_slave_main(argc, argv, &spec);
  pthread_mutex_destroy(&state.mu);
  return rc;
}
