/* sgb1.c - SGB1 wire protocol, device side. See sgb1.h for the API and PROTOCOL.md. */
#include "sgb1.h"

#include <string.h>

typedef char sgb1_float_is_32_bits[(sizeof(float) == 4) ? 1 : -1];

/* ---- little-endian writer ------------------------------------------------------------------ */

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int ok;
} writer_t;

static void w_init(writer_t *w, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->ok = (buf != NULL);
}

static void w_u8(writer_t *w, uint32_t v)
{
    if (!w->ok || w->len + 1 > w->cap || w->len + 1 > SGB1_MAX_PAYLOAD) {
        w->ok = 0;
        return;
    }
    w->buf[w->len++] = (uint8_t)(v & 0xFFu);
}

static void w_u16(writer_t *w, uint32_t v)
{
    w_u8(w, v);
    w_u8(w, v >> 8);
}

static void w_u32(writer_t *w, uint32_t v)
{
    w_u16(w, v & 0xFFFFu);
    w_u16(w, v >> 16);
}

static void w_f32(writer_t *w, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    w_u32(w, bits);
}

static void w_str(writer_t *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    size_t i;
    if (n > 255) {
        w->ok = 0;
        return;
    }
    w_u8(w, (uint32_t)n);
    for (i = 0; i < n; i++) {
        w_u8(w, (uint8_t)s[i]);
    }
}

static void w_header(writer_t *w, uint8_t type, uint16_t flags)
{
    w_u8(w, SGB1_VERSION);
    w_u8(w, type);
    w_u16(w, flags);
}

static size_t w_done(const writer_t *w)
{
    return w->ok ? w->len : 0;
}

static uint32_t rd_u16(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

static uint32_t rd_u32(const uint8_t *p)
{
    return rd_u16(p) | (rd_u16(p + 2) << 16);
}

/* ---- CRC and COBS -------------------------------------------------------------------------- */

uint16_t sgb1_crc16(uint16_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    int bit;
    for (i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (bit = 0; bit < 8; bit++) {
            uint32_t shifted = (uint32_t)crc << 1;
            crc = (uint16_t)((crc & 0x8000u) ? (shifted ^ 0x1021u) : shifted);
        }
    }
    return crc;
}

size_t sgb1_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    size_t out = 1, code_pos = 0, i;
    uint8_t code = 1;
    if (cap < 1) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (src[i] != 0) {
            if (out >= cap) {
                return 0;
            }
            dst[out++] = src[i];
            code++;
        }
        if (src[i] == 0 || code == 0xFF) {
            dst[code_pos] = code;
            code = 1;
            if (src[i] == 0 || i + 1 < len) {
                if (out >= cap) {
                    return 0;
                }
                code_pos = out++;
            } else {
                return out; /* a full block ended the input: no trailing code byte */
            }
        }
    }
    dst[code_pos] = code;
    return out;
}

int sgb1_cobs_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap, size_t *out_len)
{
    size_t i = 0, out = 0, k;
    if (len == 0) {
        return SGB1_E_COBS;
    }
    while (i < len) {
        uint8_t code = src[i];
        if (code == 0 || (size_t)code > len - i) {
            return SGB1_E_COBS;
        }
        for (k = 1; k < code; k++) {
            if (src[i + k] == 0) {
                return SGB1_E_COBS;
            }
            if (out >= cap) {
                return SGB1_E_SPACE;
            }
            dst[out++] = src[i + k]; /* out <= i + k - 1: safe in place */
        }
        i += code;
        if (code < 0xFF && i < len) {
            if (out >= cap) {
                return SGB1_E_SPACE;
            }
            dst[out++] = 0;
        }
    }
    *out_len = out;
    return SGB1_OK;
}

/* ---- frames -------------------------------------------------------------------------------- */

int sgb1_send_frame(sgb1_write_fn write, void *ctx, const uint8_t *payload, size_t len)
{
    uint8_t block[255];
    uint8_t tail[2];
    static const uint8_t zero = 0;
    size_t total = len + 2, i;
    uint8_t code = 1;
    int ended_full = 0;
    uint16_t crc;
    if (len < SGB1_HEADER_SIZE || len > SGB1_MAX_PAYLOAD || write == NULL) {
        return SGB1_E_ARG;
    }
    crc = sgb1_crc16(0xFFFFu, payload, len);
    tail[0] = (uint8_t)(crc & 0xFFu);
    tail[1] = (uint8_t)(crc >> 8);
    for (i = 0; i < total; i++) {
        uint8_t b = (i < len) ? payload[i] : tail[i - len];
        if (b != 0) {
            block[code++] = b;
        }
        if (b == 0 || code == 0xFF) {
            block[0] = code;
            if (write(ctx, block, code) != code) {
                return SGB1_E_IO;
            }
            code = 1;
            ended_full = (b != 0 && i + 1 == total);
        }
    }
    if (!ended_full) {
        block[0] = code;
        if (write(ctx, block, code) != code) {
            return SGB1_E_IO;
        }
    }
    return write(ctx, &zero, 1) == 1 ? SGB1_OK : SGB1_E_IO;
}

typedef struct {
    uint8_t *out;
    size_t cap;
    size_t len;
} membuf_t;

static size_t membuf_write(void *ctx, const uint8_t *data, size_t len)
{
    membuf_t *m = (membuf_t *)ctx;
    if (m->len + len > m->cap) {
        return 0;
    }
    memcpy(m->out + m->len, data, len);
    m->len += len;
    return len;
}

size_t sgb1_encode_frame(const uint8_t *payload, size_t len, uint8_t *out, size_t cap)
{
    membuf_t m;
    m.out = out;
    m.cap = cap;
    m.len = 0;
    return sgb1_send_frame(membuf_write, &m, payload, len) == SGB1_OK ? m.len : 0;
}

int sgb1_decode_frame(const uint8_t *block, size_t len, uint8_t *payload, size_t cap,
                      size_t *payload_len)
{
    size_t n = 0;
    int r;
    if (len > SGB1_MAX_ENCODED) {
        return SGB1_E_SPACE;
    }
    r = sgb1_cobs_decode(block, len, payload, cap, &n);
    if (r != SGB1_OK) {
        return r == SGB1_E_SPACE && cap >= SGB1_MAX_PAYLOAD + 2u ? SGB1_E_COBS : r;
    }
    if (n < SGB1_HEADER_SIZE + 2u || n > SGB1_MAX_PAYLOAD + 2u) {
        return SGB1_E_COBS;
    }
    if (sgb1_crc16(0xFFFFu, payload, n - 2) != rd_u16(payload + n - 2)) {
        return SGB1_E_CRC;
    }
    *payload_len = n - 2;
    return SGB1_OK;
}

/* ---- builders ------------------------------------------------------------------------------ */

static int finite_f32(float f)
{
    return f == f && f - f == 0.0f; /* false for NaN and +-Inf */
}

size_t sgb1_build_hello(uint8_t *buf, size_t cap, const sgb1_hello_t *h)
{
    writer_t w;
    uint8_t c;
    if (h == NULL || h->n_channels == 0 || h->channels == NULL || h->fs_num == 0 ||
        h->fs_den == 0 || h->sample_format < SGB1_INT16 || h->sample_format > SGB1_FLOAT32) {
        return 0;
    }
    w_init(&w, buf, cap);
    w_header(&w, SGB1_HELLO, 0);
    w_u32(&w, h->session);
    w_u32(&w, h->fs_num);
    w_u32(&w, h->fs_den);
    w_u8(&w, h->n_channels);
    w_u8(&w, h->sample_format);
    w_str(&w, h->device_id);
    w_str(&w, h->firmware);
    for (c = 0; c < h->n_channels; c++) {
        const sgb1_channel_t *ch = &h->channels[c];
        if (!finite_f32(ch->gain) || ch->gain == 0.0f || !finite_f32(ch->baseline)) {
            return 0;
        }
        w_f32(&w, ch->gain);
        w_f32(&w, ch->baseline);
        w_str(&w, ch->units);
        w_str(&w, ch->label);
    }
    return w_done(&w);
}

size_t sgb1_build_status(uint8_t *buf, size_t cap, uint32_t uptime_ms, uint32_t overrun_samples,
                         uint32_t dropped_frames, uint16_t buffer_used, uint16_t buffer_size)
{
    writer_t w;
    w_init(&w, buf, cap);
    w_header(&w, SGB1_STATUS, 0);
    w_u32(&w, uptime_ms);
    w_u32(&w, overrun_samples);
    w_u32(&w, dropped_frames);
    w_u16(&w, buffer_used);
    w_u16(&w, buffer_size);
    return w_done(&w);
}

size_t sgb1_build_event(uint8_t *buf, size_t cap, uint32_t sample_index, uint16_t code,
                        const char *text)
{
    writer_t w;
    w_init(&w, buf, cap);
    w_header(&w, SGB1_EVENT, 0);
    w_u32(&w, sample_index);
    w_u16(&w, code);
    w_str(&w, text);
    return w_done(&w);
}

size_t sgb1_build_ack(uint8_t *buf, size_t cap, uint8_t command, uint16_t seq,
                      uint32_t t_device_us)
{
    writer_t w;
    w_init(&w, buf, cap);
    w_header(&w, SGB1_ACK, 0);
    w_u8(&w, command);
    w_u16(&w, seq);
    w_u32(&w, t_device_us);
    return w_done(&w);
}

size_t sgb1_build_nack(uint8_t *buf, size_t cap, uint8_t command, uint16_t seq, uint8_t reason)
{
    writer_t w;
    w_init(&w, buf, cap);
    w_header(&w, SGB1_NACK, 0);
    w_u8(&w, command);
    w_u16(&w, seq);
    w_u8(&w, reason);
    return w_done(&w);
}

/* DATA: header(4) | u32 first_index | u32 t_device_us | u8 n_samples | u8 n_channels |
 *       u16 status | samples. n_samples sits at offset 12 and is patched by sgb1_data_end. */
#define DATA_N_SAMPLES_OFFSET 12u

void sgb1_data_begin(sgb1_data_writer_t *w, uint8_t *buf, size_t cap, uint8_t format,
                     uint8_t n_channels, uint32_t first_index, uint32_t t_device_us,
                     uint16_t status)
{
    writer_t hw;
    w->buf = buf;
    w->cap = cap < SGB1_MAX_PAYLOAD ? cap : SGB1_MAX_PAYLOAD;
    w->len = 0;
    w->format = format;
    w->n_channels = n_channels;
    w->n_samples = 0;
    w->error = SGB1_OK;
    if (format < SGB1_INT16 || format > SGB1_FLOAT32 || n_channels == 0) {
        w->error = SGB1_E_ARG;
        return;
    }
    w_init(&hw, buf, w->cap);
    w_header(&hw, SGB1_DATA, format);
    w_u32(&hw, first_index);
    w_u32(&hw, t_device_us);
    w_u8(&hw, 0);
    w_u8(&hw, n_channels);
    w_u16(&hw, status);
    if (!hw.ok) {
        w->error = SGB1_E_SPACE;
        return;
    }
    w->len = hw.len;
}

static int data_room(sgb1_data_writer_t *w, size_t size)
{
    if (w->error != SGB1_OK) {
        return w->error;
    }
    if (w->n_samples == 255) {
        w->error = SGB1_E_SPACE;
    } else if (w->len + (size_t)w->n_channels * size > w->cap) {
        w->error = SGB1_E_SPACE;
    }
    return w->error;
}

int sgb1_data_add(sgb1_data_writer_t *w, const int32_t *values)
{
    size_t size = (w->format == SGB1_INT16) ? 2u : 3u;
    uint8_t c;
    if (w->format == SGB1_FLOAT32) {
        w->error = SGB1_E_ARG;
    }
    if (data_room(w, size) != SGB1_OK) {
        return w->error;
    }
    for (c = 0; c < w->n_channels; c++) {
        int32_t v = values[c];
        int32_t lo = (size == 2u) ? -32768 : -8388608;
        int32_t hi = (size == 2u) ? 32767 : 8388607;
        uint32_t u = (uint32_t)v;
        if (v < lo || v > hi) {
            w->error = SGB1_E_ARG;
            return w->error;
        }
        w->buf[w->len++] = (uint8_t)(u & 0xFFu);
        w->buf[w->len++] = (uint8_t)((u >> 8) & 0xFFu);
        if (size == 3u) {
            w->buf[w->len++] = (uint8_t)((u >> 16) & 0xFFu);
        }
    }
    w->n_samples++;
    return SGB1_OK;
}

int sgb1_data_add_f32(sgb1_data_writer_t *w, const float *values)
{
    uint8_t c;
    if (w->format != SGB1_FLOAT32) {
        w->error = SGB1_E_ARG;
    }
    if (data_room(w, 4u) != SGB1_OK) {
        return w->error;
    }
    for (c = 0; c < w->n_channels; c++) {
        uint32_t bits;
        memcpy(&bits, &values[c], sizeof bits);
        w->buf[w->len++] = (uint8_t)(bits & 0xFFu);
        w->buf[w->len++] = (uint8_t)((bits >> 8) & 0xFFu);
        w->buf[w->len++] = (uint8_t)((bits >> 16) & 0xFFu);
        w->buf[w->len++] = (uint8_t)(bits >> 24);
    }
    w->n_samples++;
    return SGB1_OK;
}

size_t sgb1_data_end(sgb1_data_writer_t *w)
{
    if (w->error != SGB1_OK || w->n_samples == 0) {
        return 0;
    }
    w->buf[DATA_N_SAMPLES_OFFSET] = w->n_samples;
    return w->len;
}

/* ---- commands ------------------------------------------------------------------------------ */

int sgb1_parse_command(const uint8_t *payload, size_t len, sgb1_command_t *cmd)
{
    size_t need;
    if (len < SGB1_HEADER_SIZE) {
        return SGB1_E_LENGTH;
    }
    if (payload[0] != SGB1_VERSION) {
        return SGB1_E_VERSION;
    }
    cmd->type = payload[1];
    cmd->flags = (uint16_t)rd_u16(payload + 2);
    cmd->seq = 0;
    cmd->host_time_us = 0;
    switch (payload[1]) {
    case SGB1_START:
    case SGB1_STOP:
    case SGB1_GET_INFO:
    case SGB1_PING:
        need = SGB1_HEADER_SIZE + 2u;
        break;
    case SGB1_TIME_SYNC:
        need = SGB1_HEADER_SIZE + 10u;
        break;
    default:
        return SGB1_E_TYPE;
    }
    if (len < need) {
        return SGB1_E_LENGTH;
    }
    cmd->seq = (uint16_t)rd_u16(payload + 4);
    if (payload[1] == SGB1_TIME_SYNC) {
        cmd->host_time_us = (uint64_t)rd_u32(payload + 6) | ((uint64_t)rd_u32(payload + 10) << 32);
    }
    return SGB1_OK;
}

uint8_t sgb1_nack_reason(int result)
{
    switch (result) {
    case SGB1_E_VERSION:
        return SGB1_NACK_BAD_VERSION;
    case SGB1_E_LENGTH:
        return SGB1_NACK_BAD_LENGTH;
    case SGB1_E_TYPE:
        return SGB1_NACK_UNKNOWN_TYPE;
    default:
        return SGB1_NACK_INVALID_STATE;
    }
}

/* ---- receiver ------------------------------------------------------------------------------ */

void sgb1_rx_init(sgb1_rx_t *rx, uint8_t *buf, size_t cap)
{
    rx->buf = buf;
    rx->cap = cap;
    rx->len = 0;
    rx->skipping = 0;
    rx->frames = 0;
    rx->errors = 0;
    rx->overflows = 0;
}

int sgb1_rx_byte(sgb1_rx_t *rx, uint8_t byte, const uint8_t **payload, size_t *len)
{
    size_t n = 0;
    int r;
    if (byte != 0) {
        if (rx->skipping) {
            return 0;
        }
        if (rx->len >= rx->cap) {
            rx->overflows++;
            rx->skipping = 1;
            rx->len = 0;
            return SGB1_E_SPACE;
        }
        rx->buf[rx->len++] = byte;
        return 0;
    }
    if (rx->skipping || rx->len == 0) {
        rx->skipping = 0;
        return 0;
    }
    r = sgb1_decode_frame(rx->buf, rx->len, rx->buf, rx->cap, &n);
    rx->len = 0;
    if (r != SGB1_OK) {
        rx->errors++;
        return r;
    }
    rx->frames++;
    *payload = rx->buf;
    *len = n;
    return 1;
}
