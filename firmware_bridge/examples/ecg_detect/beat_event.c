/* beat_event.c - see beat_event.h. */
#include "beat_event.h"

#include "sgb1.h"

static char *put_uint(char *p, uint32_t v)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        *p++ = digits[--n];
    }
    return p;
}

size_t sgbeat_build_event(uint8_t *buf, size_t cap, const sgbeat_event_t *ev)
{
    char text[SGBEAT_TEXT_MAX];
    char *p = text;
    float s = ev->score < 0.0f ? 0.0f : (ev->score > 9.999f ? 9.999f : ev->score);
    const char *head = "beat s=";
    while (*head != '\0') {
        *p++ = *head++;
    }
    p = put_uint(p, (uint32_t)(s * 1000.0f + 0.5f));
    *p++ = ' ';
    *p++ = 'e';
    *p++ = '=';
    p = put_uint(p, ev->emitted_index);
    *p = '\0';
    return sgb1_build_event(buf, cap, ev->index, (uint16_t)SGBEAT_EVENT_CODE, text);
}
