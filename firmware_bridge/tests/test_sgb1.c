/*
 * test_sgb1.c - check the C library against the golden vectors (vectors/sgb1_vectors.txt).
 *
 *   test_sgb1 PATH/TO/sgb1_vectors.txt
 *
 * For every vector: CRC and COBS outputs; device -> host frames built from their inputs give the
 * same payload and wire bytes, and the wire bytes decode back; host -> device commands parse to
 * their fields; rejected frames are rejected; a byte stream through the receiver gives exactly
 * the expected payloads. Prints one line per failure and a summary; exit 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgb1.h"

#define LINE_MAX_LEN 16384
#define MAX_BYTES 4096
#define MAX_CHANNELS 16
#define MAX_VALUES 1024

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        checks++;                                                                             \
        if (!(cond)) {                                                                        \
            failures++;                                                                       \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                       \
            printf(__VA_ARGS__);                                                              \
            printf("\n");                                                                     \
        }                                                                                     \
    } while (0)

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    if (s[0] == '-' && (s[1] == 0 || s[1] == '\n' || s[1] == ' ')) {
        return 0;
    }
    while (s[0] && s[1] && s[0] != ' ' && s[0] != '\n' && n < cap) {
        char pair[3] = {s[0], s[1], 0};
        out[n++] = (uint8_t)strtoul(pair, NULL, 16);
        s += 2;
    }
    return n;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        s[--n] = 0;
    }
}

static const char *after(const char *line, const char *key)
{
    size_t n = strlen(key);
    if (strncmp(line, key, n) == 0 && (line[n] == ' ' || line[n] == 0)) {
        return line[n] == ' ' ? line + n + 1 : line + n;
    }
    return NULL;
}

static int same(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na) == 0);
}

/* ---- one frame vector ------------------------------------------------------------------- */

typedef struct {
    char kind[32];
    char name[64];
    /* hello */
    sgb1_hello_t hello;
    sgb1_channel_t channels[MAX_CHANNELS];
    char units[MAX_CHANNELS][64];
    char labels[MAX_CHANNELS][64];
    char device[256];
    char firmware[256];
    /* data */
    uint32_t first, t_us;
    uint16_t status;
    uint8_t format;
    unsigned ns, nc;
    double values[MAX_VALUES];
    size_t n_values;
    /* event */
    uint32_t index;
    uint16_t code;
    char text[256];
    /* fixed fields, commands */
    unsigned long fields[8];
    size_t n_fields;
    unsigned long seq;
    unsigned long long host_time;
    uint8_t payload[MAX_BYTES];
    size_t payload_len;
    uint8_t wire[MAX_BYTES];
    size_t wire_len;
} vec_t;

static void parse_frame_line(vec_t *v, const char *line)
{
    const char *r;
    if ((r = after(line, "session"))) {
        v->hello.session = (uint32_t)strtoul(r, NULL, 10);
    } else if ((r = after(line, "fs"))) {
        char *end;
        v->hello.fs_num = (uint32_t)strtoul(r, &end, 10);
        v->hello.fs_den = (uint32_t)strtoul(end, NULL, 10);
    } else if ((r = after(line, "format"))) {
        v->format = (uint8_t)strtoul(r, NULL, 10);
        v->hello.sample_format = v->format;
    } else if ((r = after(line, "device"))) {
        snprintf(v->device, sizeof v->device, "%s", r);
    } else if ((r = after(line, "firmware"))) {
        snprintf(v->firmware, sizeof v->firmware, "%s", r);
    } else if ((r = after(line, "channel"))) {
        unsigned c = v->hello.n_channels;
        char *end;
        if (c < MAX_CHANNELS) {
            v->channels[c].gain = strtof(r, &end);
            v->channels[c].baseline = strtof(end, &end);
            sscanf(end, "%63s %63s", v->units[c], v->labels[c]);
            v->channels[c].units = v->units[c];
            v->channels[c].label = v->labels[c];
            v->hello.n_channels = (uint8_t)(c + 1);
        }
    } else if ((r = after(line, "first"))) {
        v->first = (uint32_t)strtoul(r, NULL, 10);
    } else if ((r = after(line, "t_us"))) {
        v->t_us = (uint32_t)strtoul(r, NULL, 10);
    } else if ((r = after(line, "status"))) {
        v->status = (uint16_t)strtoul(r, NULL, 10);
    } else if ((r = after(line, "shape"))) {
        sscanf(r, "%u %u", &v->ns, &v->nc);
    } else if ((r = after(line, "values"))) {
        char *end = (char *)r;
        v->n_values = 0;
        while (*end && v->n_values < MAX_VALUES) {
            const char *start = end;
            v->values[v->n_values] = strtod(start, &end);
            if (end == start) {
                break;
            }
            v->n_values++;
        }
    } else if ((r = after(line, "index"))) {
        v->index = (uint32_t)strtoul(r, NULL, 10);
    } else if ((r = after(line, "code"))) {
        v->code = (uint16_t)strtoul(r, NULL, 10);
    } else if ((r = after(line, "text"))) {
        snprintf(v->text, sizeof v->text, "%s", r);
    } else if ((r = after(line, "fields"))) {
        char *end = (char *)r;
        v->n_fields = 0;
        while (*end && v->n_fields < 8) {
            const char *start = end;
            v->fields[v->n_fields] = strtoul(start, &end, 10);
            if (end == start) {
                break;
            }
            v->n_fields++;
        }
    } else if ((r = after(line, "seq"))) {
        v->seq = strtoul(r, NULL, 10);
    } else if ((r = after(line, "host_time"))) {
        v->host_time = strtoull(r, NULL, 10);
    } else if ((r = after(line, "payload"))) {
        v->payload_len = unhex(r, v->payload, sizeof v->payload);
    } else if ((r = after(line, "wire"))) {
        v->wire_len = unhex(r, v->wire, sizeof v->wire);
    }
}

static size_t build_device_frame(vec_t *v, uint8_t *buf, size_t cap)
{
    if (strcmp(v->kind, "hello") == 0) {
        v->hello.device_id = v->device;
        v->hello.firmware = v->firmware;
        v->hello.channels = v->channels;
        return sgb1_build_hello(buf, cap, &v->hello);
    }
    if (strcmp(v->kind, "data") == 0) {
        sgb1_data_writer_t w;
        unsigned i, c;
        sgb1_data_begin(&w, buf, cap, v->format, (uint8_t)v->nc, v->first, v->t_us, v->status);
        for (i = 0; i < v->ns; i++) {
            int32_t iv[MAX_CHANNELS * 16];
            float fv[MAX_CHANNELS * 16];
            for (c = 0; c < v->nc; c++) {
                iv[c] = (int32_t)v->values[i * v->nc + c];
                fv[c] = (float)v->values[i * v->nc + c];
            }
            if (v->format == SGB1_FLOAT32) {
                sgb1_data_add_f32(&w, fv);
            } else {
                sgb1_data_add(&w, iv);
            }
        }
        return sgb1_data_end(&w);
    }
    if (strcmp(v->kind, "status") == 0 && v->n_fields == 5) {
        return sgb1_build_status(buf, cap, (uint32_t)v->fields[0], (uint32_t)v->fields[1],
                                 (uint32_t)v->fields[2], (uint16_t)v->fields[3],
                                 (uint16_t)v->fields[4]);
    }
    if (strcmp(v->kind, "event") == 0) {
        return sgb1_build_event(buf, cap, v->index, v->code, v->text);
    }
    if (strcmp(v->kind, "ack") == 0 && v->n_fields == 3) {
        return sgb1_build_ack(buf, cap, (uint8_t)v->fields[0], (uint16_t)v->fields[1],
                              (uint32_t)v->fields[2]);
    }
    if (strcmp(v->kind, "nack") == 0 && v->n_fields == 3) {
        return sgb1_build_nack(buf, cap, (uint8_t)v->fields[0], (uint16_t)v->fields[1],
                               (uint8_t)v->fields[2]);
    }
    return (size_t)-1; /* not a device frame */
}

static int command_type(const char *kind)
{
    if (strcmp(kind, "start") == 0) return SGB1_START;
    if (strcmp(kind, "stop") == 0) return SGB1_STOP;
    if (strcmp(kind, "get_info") == 0) return SGB1_GET_INFO;
    if (strcmp(kind, "ping") == 0) return SGB1_PING;
    if (strcmp(kind, "time_sync") == 0) return SGB1_TIME_SYNC;
    return -1;
}

static void check_frame(vec_t *v)
{
    static uint8_t built[MAX_BYTES], wire[MAX_BYTES], decoded[MAX_BYTES];
    size_t n, m, k = 0;
    int ctype;
    /* the wire bytes decode to the payload (block = wire without its delimiter) */
    CHECK(v->wire_len > 0 && v->wire[v->wire_len - 1] == 0, "%s: wire must end with 0x00",
          v->name);
    CHECK(sgb1_decode_frame(v->wire, v->wire_len - 1, decoded, sizeof decoded, &k) == SGB1_OK &&
              same(decoded, k, v->payload, v->payload_len),
          "%s: decoding the wire bytes does not give the payload", v->name);
    /* the payload encodes to the wire bytes */
    m = sgb1_encode_frame(v->payload, v->payload_len, wire, sizeof wire);
    CHECK(same(wire, m, v->wire, v->wire_len), "%s: encoding the payload differs", v->name);

    n = build_device_frame(v, built, sizeof built);
    if (n != (size_t)-1) {
        CHECK(same(built, n, v->payload, v->payload_len),
              "%s: built payload differs (%lu vs %lu bytes)", v->name, (unsigned long)n,
              (unsigned long)v->payload_len);
        /* a buffer one byte short fails cleanly */
        if (v->payload_len > 0) {
            CHECK(build_device_frame(v, built, v->payload_len - 1) == 0,
                  "%s: a short buffer must give 0", v->name);
        }
        return;
    }
    ctype = command_type(v->kind);
    CHECK(ctype >= 0, "%s: unknown kind %s", v->name, v->kind);
    if (ctype >= 0) {
        sgb1_command_t cmd;
        int r = sgb1_parse_command(v->payload, v->payload_len, &cmd);
        CHECK(r == SGB1_OK, "%s: parse_command gave %d", v->name, r);
        CHECK(cmd.type == ctype && cmd.seq == v->seq, "%s: type %d seq %u", v->name, cmd.type,
              (unsigned)cmd.seq);
        if (ctype == SGB1_TIME_SYNC) {
            CHECK(cmd.host_time_us == (uint64_t)v->host_time, "%s: host_time", v->name);
        }
    }
}

/* ---- the rest ------------------------------------------------------------------------------ */

static void check_reject(const char *why, const char *name, const char *hex)
{
    static uint8_t wire[MAX_BYTES], payload[MAX_BYTES];
    size_t n = unhex(hex, wire, sizeof wire), k = 0;
    int r = sgb1_decode_frame(wire, n - 1, payload, sizeof payload, &k);
    if (strcmp(why, "crc") == 0) {
        CHECK(r == SGB1_E_CRC, "%s: expected a CRC error, got %d", name, r);
    } else if (strcmp(why, "cobs") == 0) {
        CHECK(r == SGB1_E_COBS, "%s: expected a COBS error, got %d", name, r);
    } else {
        sgb1_command_t cmd;
        CHECK(r == SGB1_OK, "%s: framing is valid, got %d", name, r);
        if (strcmp(why, "version") == 0) {
            CHECK(sgb1_parse_command(payload, k, &cmd) == SGB1_E_VERSION, "%s", name);
        } else if (strcmp(why, "length") == 0) {
            CHECK(sgb1_parse_command(payload, k, &cmd) == SGB1_E_LENGTH, "%s", name);
        }
    }
}

static void check_stream(FILE *f, const char *name)
{
    static char line[LINE_MAX_LEN];
    static uint8_t in[MAX_BYTES], want[8][256], rxbuf[SGB1_MAX_ENCODED];
    size_t n_in = 0, want_len[8], n_want = 0, got = 0, i;
    sgb1_rx_t rx;
    while (fgets(line, sizeof line, f)) {
        const char *r;
        chomp(line);
        if (strcmp(line, "end") == 0) {
            break;
        }
        if ((r = after(line, "in"))) {
            n_in = unhex(r, in, sizeof in);
        } else if ((r = after(line, "out")) && n_want < 8) {
            want_len[n_want] = unhex(r, want[n_want], sizeof want[n_want]);
            n_want++;
        }
    }
    /* byte by byte, and with a buffer too small for the data frame in the middle */
    sgb1_rx_init(&rx, rxbuf, sizeof rxbuf);
    for (i = 0; i < n_in; i++) {
        const uint8_t *p = NULL;
        size_t len = 0;
        if (sgb1_rx_byte(&rx, in[i], &p, &len) == 1) {
            CHECK(got < n_want && same(p, len, want[got], want_len[got]),
                  "%s: frame %lu differs", name, (unsigned long)got);
            got++;
        }
    }
    CHECK(got == n_want, "%s: got %lu frames, expected %lu", name, (unsigned long)got,
          (unsigned long)n_want);
    sgb1_rx_init(&rx, rxbuf, 8);
    for (i = 0; i < n_in; i++) {
        const uint8_t *p = NULL;
        size_t len = 0;
        (void)sgb1_rx_byte(&rx, in[i], &p, &len);
    }
    CHECK(rx.overflows >= 1, "%s: an 8-byte receiver must overflow on this stream", name);
}

static void check_limits(void)
{
    static uint8_t buf[SGB1_MAX_PAYLOAD + 8], wire[SGB1_MAX_FRAME + 8], out[SGB1_MAX_PAYLOAD + 8];
    sgb1_data_writer_t w;
    int32_t v[4] = {1, 2, 3, 4};
    size_t n, k = 0, i;
    /* the largest DATA frame: 252 samples x 2 channels x int16 = 1024-byte payload */
    sgb1_data_begin(&w, buf, sizeof buf, SGB1_INT16, 2, 0, 0, 0);
    for (i = 0; i < 252; i++) {
        CHECK(sgb1_data_add(&w, v) == SGB1_OK, "sample %lu must fit", (unsigned long)i);
    }
    CHECK(sgb1_data_add(&w, v) == SGB1_E_SPACE, "sample 253 must not fit");
    CHECK(sgb1_data_end(&w) == 0, "a writer with an error gives 0");
    sgb1_data_begin(&w, buf, sizeof buf, SGB1_INT16, 2, 0, 0, 0);
    for (i = 0; i < 252; i++) {
        sgb1_data_add(&w, v);
    }
    n = sgb1_data_end(&w);
    CHECK(n == SGB1_MAX_PAYLOAD, "largest payload %lu", (unsigned long)n);
    n = sgb1_encode_frame(buf, n, wire, sizeof wire);
    CHECK(n > 0 && n <= SGB1_MAX_FRAME, "largest frame %lu", (unsigned long)n);
    CHECK(sgb1_decode_frame(wire, n - 1, out, sizeof out, &k) == SGB1_OK && k == 1024,
          "largest frame decodes");
    /* out of range values are refused */
    sgb1_data_begin(&w, buf, sizeof buf, SGB1_INT16, 1, 0, 0, 0);
    v[0] = 40000;
    CHECK(sgb1_data_add(&w, v) == SGB1_E_ARG, "int16 range");
    sgb1_data_begin(&w, buf, sizeof buf, SGB1_INT24, 1, 0, 0, 0);
    v[0] = -8388609;
    CHECK(sgb1_data_add(&w, v) == SGB1_E_ARG, "int24 range");
    /* payloads outside 4..1024 bytes are refused */
    CHECK(sgb1_encode_frame(buf, 3, wire, sizeof wire) == 0, "3-byte payload");
    CHECK(sgb1_encode_frame(buf, SGB1_MAX_PAYLOAD + 1, wire, sizeof wire) == 0, "1025 bytes");
    /* an output buffer one byte short */
    n = sgb1_build_ack(buf, sizeof buf, 1, 2, 3);
    k = sgb1_encode_frame(buf, n, wire, sizeof wire);
    CHECK(k > 0 && sgb1_encode_frame(buf, n, wire, k - 1) == 0, "short frame buffer");
}

int main(int argc, char **argv)
{
    static char line[LINE_MAX_LEN];
    static vec_t v;
    FILE *f;
    int n_frames = 0, n_other = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: %s sgb1_vectors.txt\n", argv[0]);
        return 2;
    }
    f = fopen(argv[1], "r");
    if (f == NULL) {
        perror(argv[1]);
        return 2;
    }
    while (fgets(line, sizeof line, f)) {
        const char *r;
        chomp(line);
        if ((r = after(line, "crc"))) {
            static uint8_t data[MAX_BYTES];
            char hex[LINE_MAX_LEN];
            unsigned long want;
            size_t n;
            sscanf(r, "%16383s %lx", hex, &want);
            n = unhex(hex, data, sizeof data);
            CHECK(sgb1_crc16(0xFFFFu, data, n) == want, "crc of %lu bytes", (unsigned long)n);
            n_other++;
        } else if ((r = after(line, "cobs"))) {
            static uint8_t data[MAX_BYTES], want[MAX_BYTES], got[MAX_BYTES];
            static char a[LINE_MAX_LEN], b[LINE_MAX_LEN];
            size_t n, nw, ng, nd = 0;
            sscanf(r, "%16383s %16383s", a, b);
            n = unhex(a, data, sizeof data);
            nw = unhex(b, want, sizeof want);
            ng = sgb1_cobs_encode(data, n, got, sizeof got);
            CHECK(same(got, ng, want, nw), "cobs encode of %lu bytes", (unsigned long)n);
            CHECK(sgb1_cobs_decode(want, nw, got, sizeof got, &nd) == SGB1_OK &&
                      same(got, nd, data, n),
                  "cobs decode of %lu bytes", (unsigned long)n);
            /* in place */
            memcpy(got, want, nw);
            CHECK(sgb1_cobs_decode(got, nw, got, sizeof got, &nd) == SGB1_OK &&
                      same(got, nd, data, n),
                  "cobs decode in place of %lu bytes", (unsigned long)n);
            n_other++;
        } else if ((r = after(line, "frame"))) {
            memset(&v, 0, sizeof v);
            sscanf(r, "%31s %63s", v.kind, v.name);
            while (fgets(line, sizeof line, f)) {
                chomp(line);
                if (strcmp(line, "end") == 0) {
                    break;
                }
                parse_frame_line(&v, line);
            }
            check_frame(&v);
            n_frames++;
        } else if ((r = after(line, "reject"))) {
            char why[32], name[64];
            static char hex[LINE_MAX_LEN];
            sscanf(r, "%31s %63s %16383s", why, name, hex);
            check_reject(why, name, hex);
            n_other++;
        } else if ((r = after(line, "stream"))) {
            check_stream(f, r);
            n_other++;
        }
    }
    fclose(f);
    check_limits();
    CHECK(n_frames >= 10 && n_other >= 10, "too few vectors read (%d frames, %d other)",
          n_frames, n_other);
    printf("test_sgb1: %d frame vectors, %d other vectors, %d checks, %d failures\n", n_frames,
           n_other, checks, failures);
    return failures ? 1 : 0;
}
