/*
 * sgb1.h - the device side of the SGB1 wire protocol (streamgru bridge, version 1).
 *
 * Portable C99: no malloc, no hardware headers, no global state. Hardware is reached only
 * through the write callback you pass in. The byte layouts are specified in PROTOCOL.md; the
 * golden vectors in vectors/ are checked against this code and the host's Python codec.
 *
 * ------------------------------------------------------------------------------------------
 * Wire format
 *   frame   = COBS(payload || CRC16-LE(payload)) || 0x00
 *   payload = u8 version(=1) | u8 type | u16 flags | fields...   (little-endian, <= 1024 bytes)
 *   CRC     = CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0)
 *
 * Sending (device -> host)
 *   1. Build a payload into a buffer of SGB1_MAX_PAYLOAD bytes (or less, if you know your
 *      frames are small) with one of the builders; each returns the payload length, or 0 when
 *      the buffer is too small or an argument is out of range:
 *        sgb1_build_hello   sgb1_build_status   sgb1_build_event
 *        sgb1_build_ack     sgb1_build_nack
 *        sgb1_data_begin / sgb1_data_add (int16, int24) / sgb1_data_add_f32 / sgb1_data_end
 *   2. Send it: sgb1_send_frame(write, ctx, payload, len) COBS-encodes and writes the frame in
 *      pieces of at most 255 bytes (255 bytes of stack, no frame-sized buffer), or
 *      sgb1_encode_frame(payload, len, out, cap) puts the whole frame into `out`.
 *
 * Receiving (host -> device)
 *   sgb1_rx_t rx; uint8_t rxbuf[64];  sgb1_rx_init(&rx, rxbuf, sizeof rxbuf);
 *   for each received byte b:
 *       const uint8_t *p; size_t n;
 *       if (sgb1_rx_byte(&rx, b, &p, &n) == 1) {          // a frame with a good CRC
 *           sgb1_command_t cmd;
 *           int r = sgb1_parse_command(p, n, &cmd);        // START, STOP, GET_INFO, PING, TIME_SYNC
 *           if (r == SGB1_OK) ... else answer with a NACK (sgb1_nack_reason(r))
 *       }
 *   Commands are small (at most 16 bytes of payload): a 64-byte receive buffer is plenty; a
 *   longer run of bytes without 0x00 is dropped up to the next 0x00 (rx.overflows counts it).
 *
 * Thread safety: none needed. The functions touch only what you pass them; call them from one
 * context at a time per object (e.g. the main loop, not the sampling interrupt).
 * ------------------------------------------------------------------------------------------
 */
#ifndef SGB1_H
#define SGB1_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SGB1_VERSION 1u
#define SGB1_HEADER_SIZE 4u
/** Largest payload (header included, CRC excluded). */
#define SGB1_MAX_PAYLOAD 1024u
/** Largest COBS block of a frame (payload + CRC), without the 0x00 delimiter. */
#define SGB1_MAX_ENCODED (SGB1_MAX_PAYLOAD + 2u + (SGB1_MAX_PAYLOAD + 2u) / 254u + 1u)
/** Largest frame on the wire, delimiter included. */
#define SGB1_MAX_FRAME (SGB1_MAX_ENCODED + 1u)
/** Fixed part of a DATA payload before the samples. */
#define SGB1_DATA_HEADER_SIZE 16u

/** Frame types; the high bit marks host -> device commands. */
enum sgb1_type {
    SGB1_HELLO = 0x01,
    SGB1_DATA = 0x02,
    SGB1_STATUS = 0x03,
    SGB1_EVENT = 0x04,
    SGB1_ACK = 0x05,
    SGB1_NACK = 0x06,
    SGB1_START = 0x81,
    SGB1_STOP = 0x82,
    SGB1_GET_INFO = 0x83,
    SGB1_PING = 0x84,
    SGB1_TIME_SYNC = 0x85
};

/** Sample formats (DATA carries it in header flags bits 0-1). */
enum sgb1_format { SGB1_INT16 = 1, SGB1_INT24 = 2, SGB1_FLOAT32 = 3 };

/** DATA status bits (informational; the sample index is the authority on loss). */
enum sgb1_status_bits {
    SGB1_STATUS_OVERRUN = 0x0001,
    SGB1_STATUS_LEAD_OFF = 0x0002,
    SGB1_STATUS_SATURATED = 0x0004,
    SGB1_STATUS_TIME_SYNCED = 0x0008
};

/** NACK reasons. */
enum sgb1_nack_reason {
    SGB1_NACK_UNKNOWN_TYPE = 1,
    SGB1_NACK_BAD_LENGTH = 2,
    SGB1_NACK_BAD_VERSION = 3,
    SGB1_NACK_INVALID_STATE = 4
};

/** Results (negative values are errors). */
enum sgb1_result {
    SGB1_OK = 0,
    SGB1_E_SPACE = -1,   /* output buffer too small / receive buffer overflow */
    SGB1_E_COBS = -2,    /* malformed COBS block */
    SGB1_E_CRC = -3,     /* CRC mismatch */
    SGB1_E_VERSION = -4, /* protocol version is not SGB1_VERSION */
    SGB1_E_TYPE = -5,    /* unknown frame type, or not a command */
    SGB1_E_LENGTH = -6,  /* payload too short for its type */
    SGB1_E_ARG = -7,     /* an argument out of range */
    SGB1_E_IO = -8       /* the write callback wrote less than asked */
};

/** Write `len` bytes; return how many were written (anything but `len` is an error). */
typedef size_t (*sgb1_write_fn)(void *ctx, const uint8_t *data, size_t len);

/* ---- checksums and COBS ---------------------------------------------------------------- */

/** Continue a CRC-16/CCITT-FALSE over `data`; start with crc = 0xFFFF. */
uint16_t sgb1_crc16(uint16_t crc, const uint8_t *data, size_t len);

/** COBS-encode `len` bytes into `dst` (no delimiter). Returns the length, 0 if `cap` is short. */
size_t sgb1_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap);

/** COBS-decode one block (no delimiter). `dst` may equal `src` (in place). */
int sgb1_cobs_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap, size_t *out_len);

/* ---- frames ------------------------------------------------------------------------------ */

/** Append CRC, COBS-encode and write one frame with its 0x00 through `write`. */
int sgb1_send_frame(sgb1_write_fn write, void *ctx, const uint8_t *payload, size_t len);

/** The same into `out`; returns the frame length (delimiter included) or 0 if `cap` is short. */
size_t sgb1_encode_frame(const uint8_t *payload, size_t len, uint8_t *out, size_t cap);

/** Decode one block (without its 0x00) into its payload: COBS, length and CRC checked. */
int sgb1_decode_frame(const uint8_t *block, size_t len, uint8_t *payload, size_t cap,
                      size_t *payload_len);

/* ---- builders (device -> host); each returns the payload length, 0 on error ------------ */

typedef struct {
    float gain;        /* physical = (raw - baseline) / gain; finite, non-zero */
    float baseline;    /* finite */
    const char *units; /* UTF-8, <= 255 bytes, e.g. "mV" */
    const char *label; /* UTF-8, <= 255 bytes, e.g. "MLII" */
} sgb1_channel_t;

typedef struct {
    uint32_t session;       /* changes at every boot (e.g. random seed, boot counter) */
    uint32_t fs_num;        /* sample rate = fs_num / fs_den Hz */
    uint32_t fs_den;
    uint8_t n_channels;     /* 1..255 */
    uint8_t sample_format;  /* enum sgb1_format */
    const char *device_id;  /* UTF-8, <= 255 bytes */
    const char *firmware;   /* UTF-8, <= 255 bytes */
    const sgb1_channel_t *channels; /* n_channels entries */
} sgb1_hello_t;

size_t sgb1_build_hello(uint8_t *buf, size_t cap, const sgb1_hello_t *hello);
size_t sgb1_build_status(uint8_t *buf, size_t cap, uint32_t uptime_ms, uint32_t overrun_samples,
                         uint32_t dropped_frames, uint16_t buffer_used, uint16_t buffer_size);
size_t sgb1_build_event(uint8_t *buf, size_t cap, uint32_t sample_index, uint16_t code,
                        const char *text);
size_t sgb1_build_ack(uint8_t *buf, size_t cap, uint8_t command, uint16_t seq,
                      uint32_t t_device_us);
size_t sgb1_build_nack(uint8_t *buf, size_t cap, uint8_t command, uint16_t seq, uint8_t reason);

/** Incremental DATA builder: begin, add one sample (all channels) at a time, end. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    uint8_t format;
    uint8_t n_channels;
    uint8_t n_samples;
    int error; /* first error met, SGB1_OK if none */
} sgb1_data_writer_t;

void sgb1_data_begin(sgb1_data_writer_t *w, uint8_t *buf, size_t cap, uint8_t format,
                     uint8_t n_channels, uint32_t first_index, uint32_t t_device_us,
                     uint16_t status);
/** One sample of int16/int24 values (n_channels of them); range-checked. */
int sgb1_data_add(sgb1_data_writer_t *w, const int32_t *values);
/** One sample of float32 values. */
int sgb1_data_add_f32(sgb1_data_writer_t *w, const float *values);
/** Finish: returns the payload length, 0 if any add failed or no sample was added. */
size_t sgb1_data_end(sgb1_data_writer_t *w);

/* ---- commands (host -> device) ------------------------------------------------------------ */

typedef struct {
    uint8_t type;          /* SGB1_START ... SGB1_TIME_SYNC */
    uint16_t flags;
    uint16_t seq;          /* echo it in the ACK / NACK */
    uint64_t host_time_us; /* TIME_SYNC only */
} sgb1_command_t;

/** Parse a CRC-checked payload as a command. Bytes after the known fields are ignored. */
int sgb1_parse_command(const uint8_t *payload, size_t len, sgb1_command_t *cmd);

/** The NACK reason for a result of sgb1_parse_command. */
uint8_t sgb1_nack_reason(int result);

/* ---- incremental receiver ---------------------------------------------------------------- */

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    uint8_t skipping;
    uint32_t frames;    /* good frames */
    uint32_t errors;    /* blocks rejected (COBS, CRC, short) */
    uint32_t overflows; /* runs longer than the buffer */
} sgb1_rx_t;

void sgb1_rx_init(sgb1_rx_t *rx, uint8_t *buf, size_t cap);

/**
 * Feed one byte. Returns 1 when it completed a good frame: *payload (inside rx's buffer, valid
 * until the next call) and *len are set. Returns 0 when more bytes are needed, a negative
 * sgb1_result when a block was rejected (the receiver has already resynchronised).
 */
int sgb1_rx_byte(sgb1_rx_t *rx, uint8_t byte, const uint8_t **payload, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* SGB1_H */
