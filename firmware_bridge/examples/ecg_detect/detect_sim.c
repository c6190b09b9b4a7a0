/*
 * detect_sim.c - the on-device detection path on the host: raw samples in, SGB1 EVENT frames out.
 *
 * Build with an exported model (streamgru export c ... --prefix NAME):
 *   cc -std=c99 -DSG_PREFIX=NAME -DSG_HEADER='"NAME.h"' -I. -Iexamples/ecg_detect -IDIR \
 *      examples/ecg_detect/{detect_sim,beat_detect,beat_event}.c sgb1.c DIR/NAME.c [-lm]
 *   detect_sim N THRESHOLD REFRACTORY MAX_WAIT < samples.f32 > events.bin
 *
 * Reads N samples (float32, INPUT_SIZE each, native endian), steps the model, runs the beat
 * detector on output 0 and writes one COBS-framed EVENT per beat (beat_event.h) to stdout.
 * On a board the loop body is the same, called from the main loop for each new sample.
 */
#include <stdio.h>
#include <stdlib.h>

#include SG_HEADER
#include "beat_event.h"
#include "sgb1.h"

#define SG_CAT2(a, b) a##b
#define SG_CAT(a, b) SG_CAT2(a, b)
#define SG_FN(n) SG_CAT(SG_PREFIX, n)
#define MAX_SAMPLES 100000000UL

static size_t file_write(void *ctx, const uint8_t *data, size_t len)
{
    return fwrite(data, 1, len, (FILE *)ctx);
}

int main(int argc, char **argv)
{
    static SG_FN(_state) model;
    sgbeat_t det;
    float x[SG_FN(_INPUT_SIZE)], y[SG_FN(_OUTPUT_SIZE)];
    uint8_t payload[64];
    unsigned long n, t;
    if (argc != 5) {
        fprintf(stderr, "usage: detect_sim N THRESHOLD REFRACTORY MAX_WAIT < samples\n");
        return 2;
    }
    n = strtoul(argv[1], NULL, 10);
    if (n > MAX_SAMPLES) {
        fprintf(stderr, "detect_sim: N must be <= %lu, got %lu\n", MAX_SAMPLES, n);
        return 2;
    }
    SG_FN(_init)(&model);
    sgbeat_init(&det, (float)atof(argv[2]), (uint32_t)strtoul(argv[3], NULL, 10),
                (uint32_t)strtoul(argv[4], NULL, 10));
    for (t = 0; t < n; ++t) {
        sgbeat_event_t ev;
        if (fread(x, sizeof x, 1, stdin) != 1) {
            fprintf(stderr, "detect_sim: expected %lu samples, got %lu\n", n, t);
            return 2;
        }
        SG_FN(_step)(&model, x, y);
        if (sgbeat_update(&det, (uint32_t)t, y[0], &ev)) {
            size_t len = sgbeat_build_event(payload, sizeof payload, &ev);
            if (len == 0 || sgb1_send_frame(file_write, stdout, payload, len) != SGB1_OK) {
                fprintf(stderr, "detect_sim: could not send the event of sample %lu\n", t);
                return 1;
            }
        }
    }
    fprintf(stderr, "{\"beats\": %lu, \"suppressed\": %lu}\n", (unsigned long)det.n_beats,
            (unsigned long)det.n_suppressed);
    return 0;
}
