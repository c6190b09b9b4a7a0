/* device.c - portable core of an SGB1 streaming device. See device.h. */
#include "device.h"

#include <string.h>

#define NEXT(i) ((uint8_t)(((i) + 1u) % SGBDEV_BLOCKS))

static void lock(sgbdev_t *d)
{
    if (d->io.lock) {
        d->io.lock(d->io.ctx);
    }
}

static void unlock(sgbdev_t *d)
{
    if (d->io.unlock) {
        d->io.unlock(d->io.ctx);
    }
}

static void send(sgbdev_t *d, const uint8_t *payload, size_t len)
{
    if (len == 0 || sgb1_send_frame(d->io.write, d->io.ctx, payload, len) != SGB1_OK) {
        d->dropped_frames++;
        return;
    }
    d->frames_sent++;
}

static void send_hello(sgbdev_t *d)
{
    uint8_t buf[SGBDEV_HELLO_CAP];
    send(d, buf, sgb1_build_hello(buf, sizeof buf, &d->hello));
}

static void send_status(sgbdev_t *d)
{
    uint8_t buf[24];
    uint32_t overruns;
    uint8_t used;
    lock(d);
    overruns = d->overrun_samples;
    used = (uint8_t)((d->head + SGBDEV_BLOCKS - d->tail) % SGBDEV_BLOCKS);
    unlock(d);
    send(d, buf,
         sgb1_build_status(buf, sizeof buf, d->uptime_ms, overruns, d->dropped_frames,
                           (uint16_t)(used * SGBDEV_BLOCK_SAMPLES),
                           (uint16_t)((SGBDEV_BLOCKS - 1) * SGBDEV_BLOCK_SAMPLES)));
}

int sgbdev_init(sgbdev_t *d, const sgbdev_io_t *io, const sgb1_hello_t *hello, int autostart)
{
    memset(d, 0, sizeof *d);
    if (io == NULL || io->read_adc == NULL || io->write == NULL || io->micros == NULL ||
        hello == NULL || hello->sample_format != SGB1_INT16 || hello->n_channels == 0 ||
        hello->n_channels > SGBDEV_MAX_CHANNELS) {
        return SGB1_E_ARG;
    }
    d->io = *io;
    d->hello = *hello;
    d->max_latency_us = 50000u;
    d->status_period_ms = 1000u;
    d->streaming = autostart ? 1u : 0u;
    d->last_poll_us = io->micros(io->ctx);
    sgb1_rx_init(&d->rx, d->rx_buf, sizeof d->rx_buf);
    send_hello(d);
    return SGB1_OK;
}

void sgbdev_on_tick(sgbdev_t *d)
{
    uint32_t idx = d->next_index++;
    sgbdev_block_t *b;
    uint8_t c;
    if (!d->streaming) {
        return;
    }
    b = &d->blocks[d->head];
    if (b->n == SGBDEV_BLOCK_SAMPLES || (b->n > 0 && b->first_index + b->n != idx)) {
        uint8_t next = NEXT(d->head);
        if (next == d->tail) {
            d->overrun_samples++;
            d->pending_status |= SGB1_STATUS_OVERRUN;
            return;
        }
        d->head = next;
        b = &d->blocks[next];
        b->n = 0;
    }
    if (b->n == 0) {
        b->first_index = idx;
        b->t_us = d->io.micros(d->io.ctx);
        b->status = d->pending_status;
        d->pending_status = 0;
    }
    for (c = 0; c < d->hello.n_channels; c++) {
        int32_t v = d->io.read_adc(d->io.ctx, c);
        v = v < -32768 ? -32768 : (v > 32767 ? 32767 : v);
        b->v[b->n * d->hello.n_channels + c] = (int16_t)v;
    }
    b->n++;
    if (b->n == SGBDEV_BLOCK_SAMPLES && NEXT(d->head) != d->tail) {
        d->head = NEXT(d->head);
        d->blocks[d->head].n = 0;
    }
}

static void send_block(sgbdev_t *d, const sgbdev_block_t *b)
{
    uint8_t buf[SGB1_DATA_HEADER_SIZE + SGBDEV_BLOCK_SAMPLES * SGBDEV_MAX_CHANNELS * 2];
    sgb1_data_writer_t w;
    int32_t values[SGBDEV_MAX_CHANNELS];
    uint8_t i, c, nc = d->hello.n_channels;
    sgb1_data_begin(&w, buf, sizeof buf, SGB1_INT16, nc, b->first_index, b->t_us, b->status);
    for (i = 0; i < b->n; i++) {
        for (c = 0; c < nc; c++) {
            values[c] = b->v[i * nc + c];
        }
        sgb1_data_add(&w, values);
    }
    send(d, buf, sgb1_data_end(&w));
}

/* Close the interrupt's partial block when it is too old, so that slow streams stay live. */
static void close_stale_block(sgbdev_t *d, uint32_t now)
{
    lock(d);
    {
        sgbdev_block_t *b = &d->blocks[d->head];
        if (b->n > 0 && (uint32_t)(now - b->t_us) >= d->max_latency_us &&
            NEXT(d->head) != d->tail) {
            d->head = NEXT(d->head);
            d->blocks[d->head].n = 0;
        }
    }
    unlock(d);
}

void sgbdev_poll(sgbdev_t *d)
{
    uint32_t now = d->io.micros(d->io.ctx);
    d->uptime_rem_us += now - d->last_poll_us;
    d->last_poll_us = now;
    d->uptime_ms += d->uptime_rem_us / 1000u;
    d->uptime_rem_us %= 1000u;
    close_stale_block(d, now);
    while (d->tail != d->head) {
        send_block(d, &d->blocks[d->tail]);
        d->tail = NEXT(d->tail);
    }
    if (d->uptime_ms - d->last_status_ms >= d->status_period_ms) {
        d->last_status_ms = d->uptime_ms;
        send_status(d);
    }
}

static void answer(sgbdev_t *d, const sgb1_command_t *cmd)
{
    uint8_t buf[16];
    switch (cmd->type) {
    case SGB1_START:
        d->streaming = 1;
        break;
    case SGB1_STOP:
        d->streaming = 0;
        break;
    case SGB1_GET_INFO:
        send_hello(d);
        return;
    case SGB1_TIME_SYNC:
        lock(d);
        d->pending_status |= SGB1_STATUS_TIME_SYNCED;
        unlock(d);
        break;
    default: /* PING */
        break;
    }
    send(d, buf, sgb1_build_ack(buf, sizeof buf, cmd->type, cmd->seq, d->io.micros(d->io.ctx)));
}

void sgbdev_on_byte(sgbdev_t *d, uint8_t byte)
{
    const uint8_t *payload = NULL;
    size_t len = 0;
    sgb1_command_t cmd;
    int r;
    if (sgb1_rx_byte(&d->rx, byte, &payload, &len) != 1) {
        return;
    }
    r = sgb1_parse_command(payload, len, &cmd);
    if (r == SGB1_OK) {
        answer(d, &cmd);
    } else {
        uint8_t buf[16];
        uint8_t type = len > 1 ? payload[1] : 0;
        uint16_t seq = 0;
        if (len >= 6) {
            seq = (uint16_t)(payload[4] | (payload[5] << 8));
        }
        send(d, buf, sgb1_build_nack(buf, sizeof buf, type, seq, sgb1_nack_reason(r)));
    }
}
