/*
 * beat_event.h - a detected beat as an SGB1 EVENT payload (PROTOCOL.md, "Beat events").
 *
 *   code  SGBEAT_EVENT_CODE (0x0101)
 *   sample_index  the beat's sample index
 *   text  "beat s=<score x 1000, rounded> e=<emitted_index>", ASCII, e.g. "beat s=873 e=1234"
 */
#ifndef SGBEAT_EVENT_H
#define SGBEAT_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "beat_detect.h"

#define SGBEAT_EVENT_CODE 0x0101u
/** Longest text: "beat s=" + 4 digits + " e=" + 10 digits, and the terminating NUL. */
#define SGBEAT_TEXT_MAX 32u

/** Build the EVENT payload of `ev` into buf (cap bytes); returns its length or 0. */
size_t sgbeat_build_event(uint8_t *buf, size_t cap, const sgbeat_event_t *ev);

#endif
