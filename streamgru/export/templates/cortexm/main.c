/*
 * main.c - run an exported model on the samples of sg_samples.h and print every output as the
 * 8 hex digits of its float bits, one sample per line, then "END". Built with
 * -DSG_PREFIX=NAME -DSG_HEADER='"NAME.h"'; -DSG_QUIET steps without printing (for counting
 * instructions).
 */
#include <stdint.h>
#include <string.h>

#include SG_HEADER
#include "semihost.h"
#include "sg_samples.h"

#define SG_CAT2(a, b) a##b
#define SG_CAT(a, b) SG_CAT2(a, b)
#define SG_FN(n) SG_CAT(SG_PREFIX, n)
#define IN_SIZE SG_FN(_INPUT_SIZE)
#define OUT_SIZE SG_FN(_OUTPUT_SIZE)

static SG_FN(_state) sg_state;

static void put_hex(char *out, uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    int i;
    for (i = 7; i >= 0; --i) {
        out[i] = digits[v & 0xFu];
        v >>= 4;
    }
}

int main(void)
{
    char line[9 * OUT_SIZE + 2];
    float y[OUT_SIZE];
    long t;
    int j;
    SG_FN(_init)(&sg_state);
    for (t = 0; t < SG_N_SAMPLES; ++t) {
        SG_FN(_step)(&sg_state, &sg_samples[t * IN_SIZE], y);
#ifndef SG_QUIET
        for (j = 0; j < OUT_SIZE; ++j) {
            uint32_t bits;
            memcpy(&bits, &y[j], sizeof bits);
            put_hex(line + 9 * j, bits);
            line[9 * j + 8] = ' ';
        }
        line[9 * OUT_SIZE - 1] = '\n';
        line[9 * OUT_SIZE] = '\0';
        sg_write0(line);
#else
        (void)j;
        (void)line;
        (void)put_hex;
#endif
    }
    sg_write0("END\n");
    return 0;
}
