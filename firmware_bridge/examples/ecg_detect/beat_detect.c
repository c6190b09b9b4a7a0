/* beat_detect.c - see beat_detect.h. */
#include "beat_detect.h"

#include <string.h>

void sgbeat_init(sgbeat_t *det, float threshold, uint32_t refractory, uint32_t max_wait)
{
    memset(det, 0, sizeof *det);
    det->threshold = threshold;
    det->refractory = refractory;
    det->max_wait = max_wait > 0u ? max_wait : 1u;
}

static int emit(sgbeat_t *det, uint32_t at, sgbeat_event_t *ev)
{
    if (det->has_last && det->peak_index - det->last_beat < det->refractory) {
        det->n_suppressed++;
        return 0;
    }
    det->has_last = 1u;
    det->last_beat = det->peak_index;
    det->n_beats++;
    ev->index = det->peak_index;
    ev->score = det->peak_score;
    ev->emitted_index = at;
    return 1;
}

int sgbeat_update(sgbeat_t *det, uint32_t index, float score, sgbeat_event_t *ev)
{
    const uint8_t first = det->started ? 0u : 1u;
    det->started = 1u;
    if (score >= det->threshold) { /* NaN compares false: below */
        if (!det->in_run) {
            det->in_run = 1u;
            det->run_done = first; /* above from the first sample: no rising edge, no beat */
            det->n_unstarted += first;
            det->run_start = index;
            det->peak_index = index;
            det->peak_score = score;
        }
        if (!det->run_done) {
            if (score > det->peak_score) {
                det->peak_score = score;
                det->peak_index = index;
            }
            if (index - det->run_start + 1u >= det->max_wait) {
                det->run_done = 1u;
                return emit(det, index, ev);
            }
        }
        return 0;
    }
    if (det->in_run) {
        int got = det->run_done ? 0 : emit(det, index, ev);
        det->in_run = 0u;
        det->run_done = 0u;
        return got;
    }
    return 0;
}
