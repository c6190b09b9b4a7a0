/*
 * harness.c - drive an exported streamgru model from the host (the tests compile this).
 *
 * Build: cc -std=c99 -DSG_PREFIX=NAME -DSG_HEADER='"NAME.h"' harness.c NAME.c [-lm]
 *
 *   harness run N        read N samples (N * INPUT_SIZE float32, native endian) from stdin,
 *                        write the N * OUTPUT_SIZE float32 outputs to stdout
 *   harness snap N K     as run, snapshot after K samples; after N, restore and step samples
 *                        K..N-1 again: writes N + (N - K) outputs. Exits 3 if restore refuses
 *                        the snapshot, 4 if it accepts a corrupted one.
 *   harness reset N K    as run, then reset and step the first K samples again: N + K outputs
 *   harness act N        (float builds) read N float32 values, write tanh and sigmoid of each
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include SG_HEADER

#define SG_CAT2(a, b) a##b
#define SG_CAT(a, b) SG_CAT2(a, b)
#define SG_FN(n) SG_CAT(SG_PREFIX, n)

#define IN_SIZE SG_FN(_INPUT_SIZE)
#define OUT_SIZE SG_FN(_OUTPUT_SIZE)
#define MAX_SAMPLES 2000000L

static long parse_count(const char *text)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < 0 || v > MAX_SAMPLES) {
        fprintf(stderr, "harness: expected a count in 0..%ld, got '%s'\n", MAX_SAMPLES, text);
        exit(2);
    }
    return v;
}

static float *read_floats(long n)
{
    float *buf = (float *)malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (buf == NULL || fread(buf, sizeof(float), (size_t)n, stdin) != (size_t)n) {
        fprintf(stderr, "harness: expected %ld float32 values on stdin\n", n);
        exit(2);
    }
    return buf;
}

static void run_span(SG_FN(_state) * s, const float *x, long from, long to)
{
    float y[OUT_SIZE];
    long t;
    for (t = from; t < to; ++t) {
        SG_FN(_step)(s, x + t * IN_SIZE, y);
        fwrite(y, sizeof(float), OUT_SIZE, stdout);
    }
}

int main(int argc, char **argv)
{
    static SG_FN(_state) s;
    static uint8_t snap[SG_FN(_STATE_SIZE)], bad[SG_FN(_STATE_SIZE)];
    float *x;
    long n, k = 0;
    if (argc < 3) {
        fprintf(stderr, "usage: harness run|snap|reset|act N [K]\n");
        return 2;
    }
    n = parse_count(argv[2]);
    if (argc > 3) {
        k = parse_count(argv[3]);
        if (k > n) {
            fprintf(stderr, "harness: K (%ld) must be <= N (%ld)\n", k, n);
            return 2;
        }
    }
#ifdef SG_ACT_TEST
    if (strcmp(argv[1], "act") == 0) {
        long i;
        x = read_floats(n);
        for (i = 0; i < n; ++i) {
            float v[2];
            v[0] = SG_FN(_tanhf)(x[i]);
            v[1] = SG_FN(_sigmoidf)(x[i]);
            fwrite(v, sizeof(float), 2, stdout);
        }
        free(x);
        return 0;
    }
#endif
    x = read_floats(n * IN_SIZE);
    SG_FN(_init)(&s);
    if (strcmp(argv[1], "run") == 0) {
        run_span(&s, x, 0, n);
    } else if (strcmp(argv[1], "snap") == 0) {
        run_span(&s, x, 0, k);
        SG_FN(_snapshot)(&s, snap);
        run_span(&s, x, k, n);
        memcpy(bad, snap, sizeof bad);
        bad[4] ^= 0x01u;
        if (SG_FN(_restore)(&s, bad) == 0) {
            return 4;
        }
        if (SG_FN(_restore)(&s, snap) != 0) {
            return 3;
        }
        run_span(&s, x, k, n);
    } else if (strcmp(argv[1], "reset") == 0) {
        run_span(&s, x, 0, n);
        SG_FN(_reset)(&s);
        run_span(&s, x, 0, k);
    } else {
        fprintf(stderr, "harness: unknown mode '%s'\n", argv[1]);
        return 2;
    }
    free(x);
    return 0;
}
