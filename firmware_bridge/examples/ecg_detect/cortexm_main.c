/*
 * cortexm_main.c - on-device detection on a Cortex-M4F under QEMU (mps2-an386): the exported
 * model and the beat detector over the samples of sg_samples.h; every beat is built as an SGB1
 * EVENT frame (beat_event.h) and written, as hex, one frame per line, over semihosting, then
 * "END". Linked with streamgru/export/templates/cortexm/startup.c (see streamgru.export.cortexm);
 * on a board, sgb1_send_frame would write the same bytes to the UART.
 *
 * Build flags: -DSG_PREFIX=NAME -DSG_HEADER='"NAME.h"' -DSG_THRESHOLD=0.5f
 *              -DSG_REFRACTORY=90u -DSG_MAX_WAIT=72u
 */
#include <stdint.h>

#include SG_HEADER
#include "beat_event.h"
#include "semihost.h"
#include "sg_samples.h"
#include "sgb1.h"

#define SG_CAT2(a, b) a##b
#define SG_CAT(a, b) SG_CAT2(a, b)
#define SG_FN(n) SG_CAT(SG_PREFIX, n)

typedef struct {
    char text[2 * SGB1_MAX_FRAME + 2];
    size_t len;
} hex_line_t;

static size_t hex_write(void *ctx, const uint8_t *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    hex_line_t *line = (hex_line_t *)ctx;
    size_t i;
    for (i = 0; i < len && line->len + 2 < sizeof line->text - 1; ++i) {
        line->text[line->len++] = digits[data[i] >> 4];
        line->text[line->len++] = digits[data[i] & 0xFu];
    }
    return i;
}

static SG_FN(_state) sg_model;
static hex_line_t sg_line;

int main(void)
{
    sgbeat_t det;
    float y[SG_FN(_OUTPUT_SIZE)];
    uint8_t payload[64];
    long t;
    SG_FN(_init)(&sg_model);
    sgbeat_init(&det, SG_THRESHOLD, SG_REFRACTORY, SG_MAX_WAIT);
    for (t = 0; t < SG_N_SAMPLES; ++t) {
        sgbeat_event_t ev;
        SG_FN(_step)(&sg_model, &sg_samples[t * SG_FN(_INPUT_SIZE)], y);
        if (sgbeat_update(&det, (uint32_t)t, y[0], &ev)) {
            size_t len = sgbeat_build_event(payload, sizeof payload, &ev);
            sg_line.len = 0;
            if (len == 0 || sgb1_send_frame(hex_write, &sg_line, payload, len) != SGB1_OK) {
                return 1;
            }
            sg_line.text[sg_line.len++] = '\n';
            sg_line.text[sg_line.len] = '\0';
            sg_write0(sg_line.text);
        }
    }
    sg_write0("END\n");
    return 0;
}
