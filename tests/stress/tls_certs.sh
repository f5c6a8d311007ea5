#!/bin/sh
# Makes the certificates of the stress programs' TLS runs in DIR: a CA
# (ca.pem) and a slave certificate for 127.0.0.1 it signed (slave.pem,
# slave.key), EC P-256, valid for a day. Run by ctest as the setup of the
# stress_*_tls tests (tests/stress/CMakeLists.txt).
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
rm -f ca.pem ca.key slave.pem slave.key slave.csr ext.cnf ca.srl
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 1 \
  -subj /CN=interaction-stress-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout slave.key -out slave.csr \
  -subj /CN=interaction-stress-slave 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >ext.cnf
openssl x509 -req -in slave.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out slave.pem -days 1 \
  -extfile ext.cnf 2>/dev/null
echo "tls_certs: made ca.pem, slave.pem and slave.key in $dir"
