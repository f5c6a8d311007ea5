/*
 * The script language of fuzz_slave: what its input bytes mean. It is
 * shared by fuzz_slave.c (the interpreter) and make_corpus.c (which writes
 * typical scripts as seeds) and holds only definitions, never code that
 * talks to a slave.
 *
 * An input is a sequence of operations; each is one opcode byte (taken
 * modulo FZ_OP_COUNT) and its arguments. Reads past the end of the input
 * give zeros, so every input is a script. An "id" argument is one byte,
 * the id itself, except 0xff, which is followed by a 64-bit big-endian id.
 *
 *   HELLO id variant len data[len]   a Hello; variant % 5: 0 valid (version 1,
 *                                    channel FZ_CHANNEL), 1 another channel,
 *                                    2 another version, 3 no channel, 4 no version
 *   TASK id method flags len payload[len]
 *                                    a Task; method % FZ_N_METHODS indexes
 *                                    fz_methods; flags bit 0 adds deadline_ms,
 *                                    bits 1 and 2 add metadata entries ("k", "x")
 *   CANCEL id / PING id              those frames
 *   DISCONNECT id len data[len]      a Disconnect with data
 *   GOODBYE code                     a Goodbye
 *   RAW len bytes[len]               the bytes as they are, no framing
 *   BIG extra(2 bytes)               a length prefix of FZ_MAX_FRAME + 1 + extra
 *   SPLIT at(2 bytes) pause          the next write goes out in two parts, cut at
 *                                    `at` modulo its length, `pause` (as PAUSE) between
 *   PAUSE t                          sleeps: t < 200: (t % 16) * 200 us; else t - 200 ms
 *   FRAME kind id len body[len]      a frame whose body (field kind % 16) is raw bytes
 *   HOLD                             stops (or restarts) writing after every
 *                                    operation: what follows is written in one go
 *   SLOW pieces gap                  the next write goes out in 2 + pieces % 8
 *                                    parts, 1 + gap % 40 ms apart
 *   WAIT t                           waits up to t % 20 ms for a new frame from the slave
 *
 * PAUSE, SLOW's gaps and WAIT share a budget of 400 ms per script.
 */
#ifndef IA_FUZZ_SLAVE_SCRIPT_H
#define IA_FUZZ_SLAVE_SCRIPT_H

enum {
  FZ_OP_HELLO,
  FZ_OP_TASK,
  FZ_OP_CANCEL,
  FZ_OP_PING,
  FZ_OP_DISCONNECT,
  FZ_OP_GOODBYE,
  FZ_OP_RAW,
  FZ_OP_BIG,
  FZ_OP_SPLIT,
  FZ_OP_PAUSE,
  FZ_OP_FRAME,
  FZ_OP_HOLD,
  FZ_OP_SLOW,
  FZ_OP_WAIT,
  FZ_OP_COUNT
};

enum { FZ_HELLO_VALID, FZ_HELLO_CHANNEL, FZ_HELLO_VERSION, FZ_HELLO_NO_CHANNEL, FZ_HELLO_NO_VERSION };

/* The methods a TASK names, by index. The slave registers the first six;
 * the last two have no handler (606 UNKNOWN_METHOD). Sleep takes 0-3 ms
 * and Long 10-30 ms (payload[0] picks), both polling for cancellation:
 * Long is what makes the slave's watchdog hand the socket to its loop
 * (Accepted, 601, Cancel while running), and keeps its tick at 1 ms for a
 * second, so that Sleep tasks are taken over too. */
enum {
  FZ_M_SUM,
  FZ_M_FAIL,
  FZ_M_NOTHING,
  FZ_M_SLEEP,
  FZ_M_LONG,
  FZ_M_META,
  FZ_M_UNKNOWN,
  FZ_M_EMPTY,
  FZ_N_METHODS
};
static const char *const fz_methods[FZ_N_METHODS] = {"fz.S/Sum",  "fz.S/Fail", "fz.S/Nothing", "fz.S/Sleep",
                                                     "fz.S/Long", "fz.S/Meta", "fz.S/Unknown", ""};

#define FZ_CHANNEL 7u
#define FZ_MAX_FRAME (64u * 1024u) /* the slave's max_frame */

#endif
