/*
 * host_sim.c - run the example firmware on the host with a fake ADC and write the bytes it sends.
 *
 *   host_sim OUTPUT [TICKS [STALL_FROM STALL_TICKS [STOP_AT START_AGAIN_AT]]]
 *
 * OUTPUT is a file ("-" for stdout). A one-line JSON summary goes to stderr:
 *   {"ticks": ..., "overrun_samples": ..., "stopped_samples": ..., "frames_sent": ...}
 * The host's gap accounting over OUTPUT must find overrun_samples + stopped_samples lost.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fake_board.h"

static size_t file_write(void *ctx, const uint8_t *data, size_t len)
{
    return fwrite(data, 1, len, (FILE *)ctx);
}

static uint32_t arg(int argc, char **argv, int i, uint32_t fallback)
{
    return argc > i ? (uint32_t)strtoul(argv[i], NULL, 10) : fallback;
}

int main(int argc, char **argv)
{
    fake_scenario_t sc;
    fake_result_t res;
    FILE *out;
    int rc;
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUTPUT [TICKS [STALL_FROM STALL_TICKS [STOP START]]]\n", argv[0]);
        return 2;
    }
    sc.ticks = arg(argc, argv, 2, 3000);
    sc.stall_from = arg(argc, argv, 3, 1000);
    sc.stall_ticks = arg(argc, argv, 4, 200);
    sc.stop_at = arg(argc, argv, 5, 2000);
    sc.start_again_at = arg(argc, argv, 6, 2100);
    sc.poll_every = 4;
    out = (argv[1][0] == '-' && argv[1][1] == 0) ? stdout : fopen(argv[1], "wb");
    if (out == NULL) {
        perror(argv[1]);
        return 1;
    }
    rc = fake_board_run(&sc, file_write, out, &res);
    if (out != stdout) {
        fclose(out);
    } else {
        fflush(out);
    }
    fprintf(stderr,
            "{\"ticks\": %lu, \"overrun_samples\": %lu, \"stopped_samples\": %lu, "
            "\"frames_sent\": %lu, \"dropped_frames\": %lu}\n",
            (unsigned long)sc.ticks, (unsigned long)res.overrun_samples,
            (unsigned long)res.stopped_samples, (unsigned long)res.frames_sent,
            (unsigned long)res.dropped_frames);
    return rc == SGB1_OK ? 0 : 1;
}
