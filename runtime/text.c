/*
 * Command-line text as every Interaction program reads it: whole decimal
 * numbers and "HOST:PORT" (interaction/status.h). Used by ia_slave_main(),
 * ia_master_connect_addr(), the examples and the tools.
 *
 * Never: accept a prefix of the text, or write an output on failure.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "interaction/status.h"

bool ia_parse_uint(const char *text, unsigned long max, unsigned long *out) {
  if (!text || !out || *text < '0' || *text > '9') return false;
  char *end;
  errno = 0;
  unsigned long v = strtoul(text, &end, 10);
  if (errno != 0 || *end != '\0' || v > max) return false;
  *out = v;
  return true;
}

bool ia_hostport_parse(const char *addr, char *host, size_t host_cap, uint16_t *port) {
  if (!addr || !host || !port || host_cap == 0) return false;
  const char *colon = strrchr(addr, ':');
  if (!colon || colon == addr) return false;
  const char *h = addr, *h_end = colon;
  if (*addr == '[') { /* [v6]:port */
    if (colon[-1] != ']') return false;
    h = addr + 1;
    h_end = colon - 1;
  } else if (memchr(addr, ':', (size_t)(colon - addr))) {
    return false; /* a bare v6 address is ambiguous: brackets */
  }
  size_t hn = (size_t)(h_end - h);
  if (hn == 0 || hn >= host_cap) return false;
  unsigned long v = 0;
  if (!ia_parse_uint(colon + 1, UINT16_MAX, &v) || v == 0) return false;
  memcpy(host, h, hn);
  host[hn] = '\0';
  *port = (uint16_t)v;
  return true;
}
