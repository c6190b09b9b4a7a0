/*
 * device.h - portable core of an SGB1 streaming device (the example firmware's logic).
 *
 * A timer interrupt calls sgbdev_on_tick() once per sample period; it reads every channel from
 * the ADC callback into a ring of sample blocks. The main loop calls sgbdev_on_byte() for each
 * received byte and sgbdev_poll() as often as it can; poll sends every full block as a DATA frame,
 * a partial block once it is older than max_latency_us, and a STATUS frame every
 * status_period_ms.
 *
 * The sample index counts timer ticks since boot and never skips: when the ring is full the
 * interrupt drops the sample, counts it (overrun_samples) and flags the next frame
 * (SGB1_STATUS_OVERRUN); while stopped it discards samples. Either way the host sees the gap in
 * the index. A block only ever holds consecutive indices.
 *
 * Memory: SGBDEV_BLOCKS blocks of SGBDEV_BLOCK_SAMPLES x SGBDEV_MAX_CHANNELS int16 values (one
 * block is always the interrupt's). Samples are int16 (e.g. a 10-bit or 12-bit ADC).
 *
 * Hardware only through callbacks (sgbdev_io_t); no malloc.
 */
#ifndef SGB_DEVICE_H
#define SGB_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "sgb1.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef SGBDEV_MAX_CHANNELS
#define SGBDEV_MAX_CHANNELS 2
#endif
#ifndef SGBDEV_BLOCK_SAMPLES
#define SGBDEV_BLOCK_SAMPLES 16
#endif
#ifndef SGBDEV_BLOCKS
#define SGBDEV_BLOCKS 8
#endif
#ifndef SGBDEV_HELLO_CAP
#define SGBDEV_HELLO_CAP 160 /* bytes of stack for building a HELLO */
#endif
#define SGBDEV_RX_CAP 48

typedef struct {
    /** Read one channel (called from the sampling interrupt). */
    int32_t (*read_adc)(void *ctx, uint8_t channel);
    /** Write bytes to the host (called from the main loop only). */
    size_t (*write)(void *ctx, const uint8_t *data, size_t len);
    /** Free-running microsecond clock. */
    uint32_t (*micros)(void *ctx);
    /** Disable / enable the sampling interrupt around shared state (may be NULL on hosts). */
    void (*lock)(void *ctx);
    void (*unlock)(void *ctx);
    void *ctx;
} sgbdev_io_t;

typedef struct {
    uint32_t first_index;
    uint32_t t_us;
    uint16_t status;
    uint8_t n;
    int16_t v[SGBDEV_BLOCK_SAMPLES * SGBDEV_MAX_CHANNELS];
} sgbdev_block_t;

typedef struct {
    sgbdev_io_t io;
    sgb1_hello_t hello;
    uint32_t max_latency_us;
    uint32_t status_period_ms;
    /* shared with the interrupt */
    volatile uint8_t head;      /* block the interrupt fills */
    volatile uint8_t tail;      /* next block the main loop sends */
    volatile uint8_t streaming;
    volatile uint16_t pending_status;
    volatile uint32_t next_index;
    volatile uint32_t overrun_samples;
    sgbdev_block_t blocks[SGBDEV_BLOCKS];
    /* main loop only */
    uint32_t dropped_frames;
    uint32_t frames_sent;
    uint32_t last_poll_us;
    uint32_t uptime_rem_us;
    uint32_t uptime_ms;
    uint32_t last_status_ms;
    sgb1_rx_t rx;
    uint8_t rx_buf[SGBDEV_RX_CAP];
} sgbdev_t;

/**
 * Set up the device. `hello` (and the strings and channels it points to) must outlive `dev`;
 * its sample_format must be SGB1_INT16 and n_channels <= SGBDEV_MAX_CHANNELS.
 * With autostart the device streams at once; otherwise it waits for START.
 * Returns SGB1_OK or SGB1_E_ARG. Sends a HELLO.
 */
int sgbdev_init(sgbdev_t *dev, const sgbdev_io_t *io, const sgb1_hello_t *hello, int autostart);

/** Sampling interrupt: take one sample of every channel. */
void sgbdev_on_tick(sgbdev_t *dev);

/** Main loop: one byte received from the host. */
void sgbdev_on_byte(sgbdev_t *dev, uint8_t byte);

/** Main loop: send what is ready. */
void sgbdev_poll(sgbdev_t *dev);

#ifdef __cplusplus
}
#endif

#endif /* SGB_DEVICE_H */
