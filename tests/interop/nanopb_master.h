/*
 * The nanopb-only master of the interop tests (nanopb_master.c): the
 * sum-slave it spawns, its socket, and the master's side of the protocol,
 * each step asserting with criterion. Frames are nanopb's
 * interaction_v1_Frame; release a received one with pb_release.
 *
 * Never: include a libinteraction or protobuf-c header here.
 */
#ifndef IA_TESTS_INTEROP_NANOPB_MASTER_H
#define IA_TESTS_INTEROP_NANOPB_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <pb.h>

#include "interaction.pb.h"
#include "sum.pb.h"

#define HOST "127.0.0.1"
#define CHANNEL 7u
#define WAIT_MS 5000u /* bound on every "should happen soon" wait */

uint64_t now_ms(void);

/* The spawned sum-slave (one per test process). */
extern pid_t slave_pid;  /* 0 once reaped */
extern int slave_status; /* waitpid status once reaped */
/* fork + execv of sum-slave on 127.0.0.1 port 0 with `channel`; waits
 * (bounded) for its `listening on` line. */
void spawn_slave(uint32_t channel);
/* Waits up to timeout_ms for the slave to exit; true once reaped. */
bool reap_slave(uint32_t timeout_ms);
/* SIGTERM, a bounded wait, then SIGKILL; always reaps. Idempotent. */
void stop_slave(void);

/* Frames decoded so far, and how many of them were not byte-identical to
 * nanopb's own encoding of what they decoded to. */
extern size_t frames_received;
extern size_t frames_noncanonical;

/* A TCP connection to the slave, established within WAIT_MS. */
int dial(void);
void send_frame(int fd, const interaction_v1_Frame *frame);
/* The next frame other than a heartbeat Ping (which it answers), within
 * WAIT_MS, decoded strictly. */
void recv_frame(int fd, interaction_v1_Frame *frame);
/* True if the slave closes the connection within WAIT_MS, sending nothing. */
bool expect_eof(int fd);
/* Decodes `bytes` as `desc` into `msg`; asserts that nanopb took every byte. */
void decode_payload(const pb_bytes_array_t *bytes, const pb_msgdesc_t *desc, void *msg, const char *what);

/* Hello{version=1, channel, master_name="nanopb"} with id 1; *reply is the
 * answer (Welcome or Refusal), not checked. */
void hello(int fd, uint32_t channel, interaction_v1_Frame *reply);
/* Asserts that *w is the Welcome to a Hello (id 1, version 1). */
void expect_welcome(const interaction_v1_Frame *w);
/* Dials the slave and completes the handshake on CHANNEL; asserts on the Welcome. */
int connect_and_hello(void);
/* Task{method, payload} with `id` (the payload is consumed), with optional
 * metadata and deadline. */
void send_task(int fd, uint64_t id, const char *method, pb_bytes_array_t *payload,
               interaction_v1_Task_MetadataEntry *metadata, pb_size_t metadata_count, uint64_t deadline_ms);
pb_bytes_array_t *sum_task(bool has_a, int64_t a, bool has_b, int64_t b);
pb_bytes_array_t *sleep_task(uint32_t ms);
/* A frame with `id` and an empty body of kind `body` (Ping, Cancel, Disconnect). */
void send_empty(int fd, uint64_t id, pb_size_t body);
/* The reply to task `id`: skips one Accepted and answers Pings; the first
 * other frame, which must carry `id`. */
void recv_reply(int fd, uint64_t id, interaction_v1_Frame *reply);

#endif
