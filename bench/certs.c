/*
 * Throw-away certificates with the openssl command line (certs.h). The
 * commands read only the configuration written here (-config, -extfile),
 * never the system's openssl.cnf, so the certificates carry exactly the
 * extensions below on any machine.
 */
#include "certs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OPENSSL_WAIT_MS 10000
#define MAX_ARGS 24

/* Every file the commands make, by name in the directory. */
enum { F_CNF, F_LOG, F_CA_KEY, F_CA, F_KEY, F_CSR, F_CERT, N_FILES };
static const char *const names[N_FILES] = {"openssl.cnf", "openssl.log", "ca.key",   "ca.pem",
                                           "slave.key",   "slave.csr",   "slave.pem"};

/* Built before anything is made, so that removal (from a signal handler
 * too) needs no formatting. */
static char dir[PATH_MAX];
static char paths[N_FILES][PATH_MAX];
static volatile sig_atomic_t have_dir;
static volatile pid_t running; /* the openssl in progress, 0 if none */

static const char config[] = "[req]\n"
                             "distinguished_name = dn\n"
                             "prompt = no\n"
                             "[dn]\n"
                             "CN = bench-run throw-away CA\n"
                             "[ca]\n"
                             "basicConstraints = critical, CA:TRUE\n"
                             "keyUsage = critical, keyCertSign, cRLSign\n"
                             "subjectKeyIdentifier = hash\n"
                             "[slave]\n"
                             "basicConstraints = critical, CA:FALSE\n"
                             "keyUsage = critical, digitalSignature\n"
                             "extendedKeyUsage = serverAuth\n"
                             "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                             "authorityKeyIdentifier = keyid\n";

void bench_certs_remove(void) {
  pid_t pid = running;
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    running = 0;
  }
  if (!have_dir) return;
  for (int i = 0; i < N_FILES; i++)
    unlink(paths[i]);
  rmdir(dir);
  have_dir = 0;
}

/* The last line openssl wrote to its log, for the reason of a failure. */
static void log_tail(char *out, size_t outlen) {
  char buf[4096];
  out[0] = '\0';
  FILE *f = fopen(paths[F_LOG], "r");
  if (f == NULL) return;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    n--;
  buf[n] = '\0';
  const char *line = strrchr(buf, '\n');
  line = line ? line + 1 : buf;
  size_t m = strlen(line) < outlen ? strlen(line) : outlen - 1;
  memcpy(out, line, m);
  out[m] = '\0';
}

/* Runs `openssl ARG...` (the arguments up to a NULL) with its output in the
 * log, bounded in time. */
static int run_openssl(char *err, size_t errlen, ...) {
  char *argv[MAX_ARGS + 2] = {"openssl"};
  va_list ap;
  va_start(ap, errlen);
  int argc = 1;
  for (const char *arg; argc <= MAX_ARGS && (arg = va_arg(ap, const char *)) != NULL;)
    argv[argc++] = (char *)arg;
  va_end(ap);
  argv[argc] = NULL;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(err, errlen, "fork: %s", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    int log = open(paths[F_LOG], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log < 0 || null < 0 || dup2(null, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0) _exit(126);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp("openssl", argv);
    _exit(127);
  }
  running = pid;
  int status = -1;
  for (int waited = 0;; waited += 5) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      status = -1;
      break;
    }
    if (waited >= OPENSSL_WAIT_MS) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      running = 0;
      snprintf(err, errlen, "openssl %s: no answer in %d ms", argv[1], OPENSSL_WAIT_MS);
      return -1;
    }
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  running = 0;
  if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  char tail[200];
  log_tail(tail, sizeof tail);
  if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 127)
    snprintf(err, errlen, "cannot run openssl (is the openssl command line installed?)");
  else
    snprintf(err, errlen, "openssl %s failed: %s", argv[1], tail[0] ? tail : "no output");
  return -1;
}

static int write_config(char *err, size_t errlen) {
  FILE *f = fopen(paths[F_CNF], "w");
  bool ok = f != NULL && fputs(config, f) >= 0;
  if (f != NULL && fclose(f) != 0) ok = false;
  if (!ok) snprintf(err, errlen, "%s: %s", paths[F_CNF], strerror(errno));
  return ok ? 0 : -1;
}

static int make_files(char *err, size_t errlen) {
  if (write_config(err, errlen) != 0) return -1;
  const char *cnf = paths[F_CNF], *ca = paths[F_CA], *ca_key = paths[F_CA_KEY];
  if (run_openssl(err, errlen, "req", "-x509", "-config", cnf, "-extensions", "ca", "-newkey", "ec",
                  "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key, "-out", ca, "-days",
                  "1", NULL) != 0)
    return -1;
  if (run_openssl(err, errlen, "req", "-new", "-config", cnf, "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-nodes", "-keyout", paths[F_KEY], "-out", paths[F_CSR], "-subj",
                  "/CN=127.0.0.1", NULL) != 0)
    return -1;
  return run_openssl(err, errlen, "x509", "-req", "-in", paths[F_CSR], "-CA", ca, "-CAkey", ca_key,
                     "-set_serial", "1", "-days", "1", "-extfile", cnf, "-extensions", "slave", "-out",
                     paths[F_CERT], NULL);
}

int bench_certs_make(bench_certs *out, char *err, size_t errlen) {
  if (have_dir) {
    snprintf(err, errlen, "certificates made twice");
    return -1;
  }
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || tmp[0] == '\0') tmp = "/tmp";
  /* Room for the longest name behind the directory. */
  int n = snprintf(dir, sizeof dir - 16, "%s/bench-run-tls.XXXXXX", tmp);
  if (n < 0 || (size_t)n >= sizeof dir - 16) {
    snprintf(err, errlen, "TMPDIR is too long");
    return -1;
  }
  if (mkdtemp(dir) == NULL) {
    snprintf(err, errlen, "mkdtemp %s: %s", dir, strerror(errno));
    return -1;
  }
  for (int i = 0; i < N_FILES; i++)
    if (snprintf(paths[i], sizeof paths[i], "%s/%s", dir, names[i]) < 0) paths[i][0] = '\0';
  have_dir = 1;
  if (make_files(err, errlen) != 0) {
    bench_certs_remove();
    return -1;
  }
  out->ca = paths[F_CA];
  out->cert = paths[F_CERT];
  out->key = paths[F_KEY];
  return 0;
}
