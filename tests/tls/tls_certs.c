/* Makes the TLS tests' certificates (tls_certs.h) by running the openssl
 * command in a fresh temporary directory: two `req -x509` for the CAs, two
 * `req -new` for the keys and requests, and `openssl ca` for every signed
 * certificate -- `ca` because it alone takes a start and an end date in
 * OpenSSL 3.0, which the expired certificate needs. About 60 ms in all. */
#define _GNU_SOURCE /* close_range */
#include "tls_certs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tu.h"

#ifndef OPENSSL_PATH
#error "OPENSSL_PATH must name the openssl command"
#endif

/* The bound on one openssl run (each takes milliseconds). */
#define OPENSSL_TIMEOUT_MS 20000u

/* One config serves every run: `req` takes its CA extensions from it and
 * `ca` its database, policy and the slave's and master's extensions. */
static const char config_text[] = "[req]\n"
                                  "distinguished_name = dn\n"
                                  "prompt = no\n"
                                  "[dn]\n"
                                  "CN = ia-test\n"
                                  "[v3_ca]\n"
                                  "basicConstraints = critical,CA:TRUE\n"
                                  "keyUsage = critical,keyCertSign,cRLSign\n"
                                  "subjectKeyIdentifier = hash\n"
                                  "[ca]\n"
                                  "default_ca = test\n"
                                  "[test]\n"
                                  "database = index.txt\n"
                                  "new_certs_dir = .\n"
                                  "serial = serial\n"
                                  "default_md = sha256\n"
                                  "policy = any\n"
                                  "copy_extensions = none\n"
                                  "unique_subject = no\n"
                                  "email_in_dn = no\n"
                                  "[any]\n"
                                  "commonName = supplied\n"
                                  "[server]\n"
                                  "basicConstraints = CA:FALSE\n"
                                  "subjectAltName = IP:127.0.0.1,DNS:localhost\n"
                                  "extendedKeyUsage = serverAuth\n"
                                  "[client]\n"
                                  "basicConstraints = CA:FALSE\n"
                                  "extendedKeyUsage = clientAuth\n";

static bool fail(char *why, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, cap, fmt, ap);
  va_end(ap);
  return false;
}

static bool write_file(const tls_certs *c, const char *name, const char *text) {
  char path[TLS_CERTS_PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/%s", c->dir, name);
  FILE *f = fopen(path, "w");
  if (f == NULL) return false;
  bool ok = fputs(text, f) >= 0;
  return fclose(f) == 0 && ok;
}

/* The last lines openssl wrote, for `why`. */
static void log_tail(const tls_certs *c, char *why, size_t cap) {
  char path[TLS_CERTS_PATH_MAX + 32], text[4096];
  snprintf(path, sizeof path, "%s/openssl.log", c->dir);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
  if (f) fclose(f);
  text[n] = '\0';
  size_t used = strlen(why);
  if (used + 1 < cap) snprintf(why + used, cap - used, ": %s", n > 512 ? text + n - 512 : text);
}

/* Runs openssl with `args` (NULL-terminated, without argv[0]) in the
 * directory, its output appended to openssl.log there. */
static bool run_openssl(const tls_certs *c, const char *const args[], char *why, size_t cap) {
  /* Through /bin/sh, which scripts/valgrind.sh does not follow: openssl
   * itself is not under test, and under valgrind each run would take
   * seconds. */
  char *argv[40];
  int argc = 0;
  argv[argc++] = "/bin/sh";
  argv[argc++] = "-c";
  argv[argc++] = "exec \"$0\" \"$@\"";
  argv[argc++] = (char *)OPENSSL_PATH;
  for (int i = 0; args[i] != NULL && argc < 39; i++)
    argv[argc++] = (char *)args[i];
  argv[argc] = NULL;
  char log_path[TLS_CERTS_PATH_MAX + 32];
  snprintf(log_path, sizeof log_path, "%s/openssl.log", c->dir);
  int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) {
    if (log_fd >= 0) close(log_fd);
    if (null_fd >= 0) close(null_fd);
    return fail(why, cap, "cannot open %s: %s", log_path, strerror(errno));
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    /* Only async-signal-safe calls until execv: the test has threads. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
        dup2(log_fd, STDERR_FILENO) < 0 || chdir(c->dir) != 0)
      _exit(126);
    close_range(3, ~0u, 0);
    execv(argv[0], argv);
    _exit(127);
  }
  close(log_fd);
  close(null_fd);
  if (pid < 0) return fail(why, cap, "fork: %s", strerror(errno));
  uint64_t deadline = tu_now_ms() + OPENSSL_TIMEOUT_MS;
  int status = 0;
  pid_t w;
  while ((w = waitpid(pid, &status, WNOHANG)) == 0 && tu_now_ms() < deadline)
    tu_sleep_ms(2);
  if (w != pid) {
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return fail(why, cap, "openssl %s did not finish within %u ms", args[0], OPENSSL_TIMEOUT_MS);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fail(why, cap, "openssl %s %s exited with status %d", args[0], args[1] ? args[1] : "",
         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    log_tail(c, why, cap);
    return false;
  }
  return true;
}

#define EC_KEY "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"

/* A self-signed CA: NAME.pem and NAME.key. */
static bool make_ca(const tls_certs *c, const char *name, char *why, size_t cap) {
  char key[64], pem[64], subj[64];
  snprintf(key, sizeof key, "%s.key", name);
  snprintf(pem, sizeof pem, "%s.pem", name);
  snprintf(subj, sizeof subj, "/CN=ia-%s", name);
  const char *const args[] = {"req", "-config", "ca.cnf", "-x509", EC_KEY, "-keyout",     key,     "-out",
                              pem,   "-subj",   subj,     "-days", "3650", "-extensions", "v3_ca", NULL};
  return run_openssl(c, args, why, cap);
}

/* A key and a certificate request for it: NAME.key and NAME.csr. */
static bool make_request(const tls_certs *c, const char *name, char *why, size_t cap) {
  char key[64], csr[64], subj[64];
  snprintf(key, sizeof key, "%s.key", name);
  snprintf(csr, sizeof csr, "%s.csr", name);
  snprintf(subj, sizeof subj, "/CN=ia-%s", name);
  const char *const args[] = {"req", "-config", "ca.cnf", "-new",  EC_KEY, "-keyout",
                              key,   "-out",    csr,      "-subj", subj,   NULL};
  return run_openssl(c, args, why, cap);
}

/* Signs REQUEST.csr with the CA `ca` into `out`, with the extensions
 * section `ext`; valid for ten years from now, or only on 1 January 2020
 * when `expired`. */
static bool sign(const tls_certs *c, const char *ca, const char *request, const char *out, const char *ext,
                 bool expired, char *why, size_t cap) {
  char ca_pem[64], ca_key[64], csr[64];
  snprintf(ca_pem, sizeof ca_pem, "%s.pem", ca);
  snprintf(ca_key, sizeof ca_key, "%s.key", ca);
  snprintf(csr, sizeof csr, "%s.csr", request);
  const char *args[32] = {"ca",   "-config", "ca.cnf", "-batch", "-notext", "-cert",       ca_pem, "-keyfile",
                          ca_key, "-in",     csr,      "-out",   out,       "-extensions", ext};
  int n = 15;
  if (expired) {
    args[n++] = "-startdate";
    args[n++] = "20200101000000Z";
    args[n++] = "-enddate";
    args[n++] = "20200102000000Z";
  } else {
    args[n++] = "-days";
    args[n++] = "3650";
  }
  args[n] = NULL;
  return run_openssl(c, args, why, cap);
}

static bool set_path(const tls_certs *c, tls_path path, const char *name) {
  return snprintf(path, TLS_CERTS_PATH_MAX, "%s/%s", c->dir, name) < TLS_CERTS_PATH_MAX;
}

bool tls_certs_make(tls_certs *c, char *why, size_t cap) {
  memset(c, 0, sizeof *c);
  const char *tmp = getenv("TMPDIR");
  snprintf(c->dir, sizeof c->dir, "%s/ia-tls-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(c->dir) == NULL) {
    fail(why, cap, "mkdtemp %s: %s", c->dir, strerror(errno));
    c->dir[0] = '\0';
    return false;
  }
  bool ok = set_path(c, c->ca, "ca.pem") && set_path(c, c->other_ca, "other-ca.pem") &&
            set_path(c, c->slave_key, "slave.key") && set_path(c, c->slave_cert, "slave.pem") &&
            set_path(c, c->expired_cert, "expired.pem") && set_path(c, c->other_slave, "other-slave.pem") &&
            set_path(c, c->client_key, "master.key") && set_path(c, c->client_cert, "master.pem") &&
            set_path(c, c->other_client, "other-master.pem");
  if (!ok) fail(why, cap, "the temporary directory's path %s is too long", c->dir);
  if (ok && !(write_file(c, "ca.cnf", config_text) && write_file(c, "index.txt", "") &&
              write_file(c, "serial", "01\n")))
    ok = fail(why, cap, "cannot write the openssl config in %s: %s", c->dir, strerror(errno));
  ok = ok && make_ca(c, "ca", why, cap) && make_ca(c, "other-ca", why, cap) &&
       make_request(c, "slave", why, cap) && make_request(c, "master", why, cap) &&
       sign(c, "ca", "slave", "slave.pem", "server", false, why, cap) &&
       sign(c, "ca", "slave", "expired.pem", "server", true, why, cap) &&
       sign(c, "other-ca", "slave", "other-slave.pem", "server", false, why, cap) &&
       sign(c, "ca", "master", "master.pem", "client", false, why, cap) &&
       sign(c, "other-ca", "master", "other-master.pem", "client", false, why, cap);
  if (!ok) tls_certs_remove(c);
  return ok;
}

void tls_certs_remove(tls_certs *c) {
  if (c->dir[0] == '\0') return;
  DIR *d = opendir(c->dir);
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
  }
  rmdir(c->dir);
  c->dir[0] = '\0';
}
