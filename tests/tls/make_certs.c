/*
 * make_certs DIR: the test CA and a slave certificate for 127.0.0.1 it
 * signed, made by tls_certs.c, as DIR/ca.pem, DIR/slave.pem and
 * DIR/slave.key -- the files tests/common/tu.h's TU_TLS_DIR names. The
 * setup of the stress programs' TLS runs (tests/stress/CMakeLists.txt).
 */
#include <stdio.h>
#include <stdlib.h>

#include "tls_certs.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_certs DIR\n");
    return 2;
  }
  /* Made inside DIR, so that the three are moved, not copied, out of the
   * temporary directory. */
  setenv("TMPDIR", argv[1], 1);
  tls_certs certs;
  char why[1024] = "";
  if (!tls_certs_make(&certs, why, sizeof why)) {
    fprintf(stderr, "make_certs: %s\n", why);
    return 1;
  }
  const char *from[] = {certs.ca, certs.slave_cert, certs.slave_key};
  const char *names[] = {"ca.pem", "slave.pem", "slave.key"};
  int rc = 0;
  for (int i = 0; i < 3 && rc == 0; i++) {
    char to[TLS_CERTS_PATH_MAX + 16];
    snprintf(to, sizeof to, "%s/%s", argv[1], names[i]);
    if (rename(from[i], to) != 0) {
      perror("make_certs: rename");
      rc = 1;
    }
  }
  tls_certs_remove(&certs);
  if (rc == 0) printf("make_certs: ca.pem, slave.pem and slave.key in %s\n", argv[1]);
  return rc;
}
