/*
 * fake_board.h - the example firmware on the host: a fake ADC, a fake clock, and a scripted
 * session (commands from a host, a main loop that sometimes stalls) driving device.c.
 *
 * The fake ADC is a pure function of the sample index, so a test can check every sample that
 * arrives: fake_adc_value(index, channel).
 */
#ifndef FAKE_BOARD_H
#define FAKE_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "device.h"

#define FAKE_FS_NUM 2000000u /* 16 MHz / 8 (Timer1 prescaler)... */
#define FAKE_FS_DEN 5556u    /* ...divided by OCR1A + 1: 359.97 Hz, as on the real board */

typedef struct {
    uint32_t ticks;             /* timer interrupts run */
    uint32_t stall_from;        /* the main loop does not poll during [stall_from, +stall_ticks) */
    uint32_t stall_ticks;
    uint32_t stop_at;           /* the host sends STOP at this tick (0: never) ... */
    uint32_t start_again_at;    /* ... and START again at this one */
    uint32_t poll_every;        /* the main loop polls every this many ticks */
} fake_scenario_t;

typedef struct {
    uint32_t overrun_samples;   /* counted by the device */
    uint32_t stopped_samples;   /* ticks while stopped after the first START */
    uint32_t frames_sent;
    uint32_t dropped_frames;
} fake_result_t;

/** The fake ADC: a deterministic 10-bit-like value (0..1023) for a sample index and channel. */
int32_t fake_adc_value(uint32_t index, uint8_t channel);

/** The HELLO the fake board sends. */
const sgb1_hello_t *fake_hello(void);

/** Run a scenario; every byte the device sends goes through `write`. Returns SGB1_OK. */
int fake_board_run(const fake_scenario_t *sc, sgb1_write_fn write, void *ctx,
                   fake_result_t *result);

#endif /* FAKE_BOARD_H */
