/*
 * test_device.c - run the example firmware (device.c) on the fake board and check what it sends:
 * a HELLO first, an ACK or NACK for every command, every DATA sample equal to the fake ADC at its
 * index, and the index gaps adding up to exactly the samples the device says it dropped (overrun)
 * plus those it discarded while stopped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_board.h"

#define OUT_CAP (1u << 20)

static uint8_t out[OUT_CAP];
static size_t out_len;
static int failures, checks;

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

static size_t mem_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    if (out_len + len > OUT_CAP) {
        return 0;
    }
    memcpy(out + out_len, data, len);
    out_len += len;
    return len;
}

static uint32_t u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void run(const fake_scenario_t *sc, const char *what)
{
    static uint8_t rxbuf[SGB1_MAX_ENCODED];
    fake_result_t res;
    sgb1_rx_t rx;
    size_t i;
    int n_frames = 0, have_expected = 0, acks = 0, nacks = 0, statuses = 0;
    uint32_t expected = 0, lost = 0, samples = 0, bad_samples = 0, last_overruns = 0;

    out_len = 0;
    CHECK(fake_board_run(sc, mem_write, NULL, &res) == SGB1_OK, "%s: run", what);
    sgb1_rx_init(&rx, rxbuf, sizeof rxbuf);
    for (i = 0; i < out_len; i++) {
        const uint8_t *p = NULL;
        size_t n = 0;
        int r = sgb1_rx_byte(&rx, out[i], &p, &n);
        CHECK(r >= 0, "%s: byte %lu: receiver error %d", what, (unsigned long)i, r);
        if (r != 1) {
            continue;
        }
        if (n_frames++ == 0) {
            CHECK(p[1] == SGB1_HELLO, "%s: first frame is type %#x, not HELLO", what, p[1]);
        }
        if (p[1] == SGB1_DATA) {
            uint32_t first = u32le(p + 4), s;
            uint8_t ns = p[12], nc = p[13], c;
            CHECK(p[2] == SGB1_INT16 && nc == 2 && n == 16u + ns * nc * 2u, "%s: DATA layout",
                  what);
            if (have_expected) {
                CHECK(first >= expected, "%s: index went back (%lu < %lu)", what,
                      (unsigned long)first, (unsigned long)expected);
                lost += first - expected;
            }
            for (s = 0; s < ns; s++) {
                for (c = 0; c < nc; c++) {
                    const uint8_t *q = p + 16 + (s * nc + c) * 2;
                    int32_t v = (int16_t)(q[0] | (q[1] << 8));
                    bad_samples += v != fake_adc_value(first + s, c);
                }
            }
            samples += ns;
            expected = first + ns;
            have_expected = 1;
        } else if (p[1] == SGB1_ACK) {
            acks++;
        } else if (p[1] == SGB1_NACK) {
            nacks++;
            CHECK(p[4] == 0x99 && p[7] == SGB1_NACK_UNKNOWN_TYPE, "%s: NACK fields", what);
        } else if (p[1] == SGB1_STATUS) {
            statuses++;
            last_overruns = u32le(p + 8);
        }
    }
    CHECK(bad_samples == 0, "%s: %lu samples differ from the fake ADC", what,
          (unsigned long)bad_samples);
    CHECK(lost == res.overrun_samples + res.stopped_samples,
          "%s: index gaps %lu != overruns %lu + stopped %lu", what, (unsigned long)lost,
          (unsigned long)res.overrun_samples, (unsigned long)res.stopped_samples);
    CHECK(samples + lost == sc->ticks, "%s: delivered %lu + lost %lu != ticks %lu", what,
          (unsigned long)samples, (unsigned long)lost, (unsigned long)sc->ticks);
    CHECK(acks == (sc->stop_at ? 5 : 3) && nacks == 1, "%s: %d ACKs, %d NACKs", what, acks,
          nacks);
    CHECK(statuses >= 1 && last_overruns <= res.overrun_samples, "%s: STATUS frames", what);
    CHECK(res.dropped_frames == 0, "%s: frames dropped by the writer", what);
    printf("%s: %lu samples, %lu lost (%lu overrun, %lu stopped), %d frames\n", what,
           (unsigned long)samples, (unsigned long)lost, (unsigned long)res.overrun_samples,
           (unsigned long)res.stopped_samples, n_frames);
}

int main(void)
{
    fake_scenario_t calm = {3000, 0, 0, 0, 0, 1};
    fake_scenario_t stall = {3000, 1000, 400, 2000, 2100, 4};
    fake_scenario_t slow = {2000, 0, 0, 0, 0, 40}; /* polls rarely: blocks queue up */
    run(&calm, "calm");
    run(&stall, "stall+stop");
    CHECK(stall.stall_ticks > (SGBDEV_BLOCKS - 1) * SGBDEV_BLOCK_SAMPLES, "scenario sanity");
    run(&slow, "slow poll");
    printf("test_device: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
