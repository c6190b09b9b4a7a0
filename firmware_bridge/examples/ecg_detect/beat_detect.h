/*
 * beat_detect.h - streamgru's BeatDetector ("peak" mode) for one stream, in C99.
 *
 * A run is a stretch of samples with score >= threshold. Each run gives at most one beat: the
 * run's first score maximum, decided when the run ends or max_wait samples after it began,
 * whichever comes first; a beat closer than refractory samples to the previous one is dropped.
 * A run that is already above threshold at the first sample after init (the model's output
 * from its zero state) has no rising edge and gives no beat (counted in n_unstarted).
 * Fed the same scores, it decides exactly what streamgru.signal.beats.BeatDetector decides
 * (index_mode="peak"), with refractory = ceil(refractory_s * fs) and
 * max_wait = max(1, ceil(max_wait_s * fs)) samples.
 *
 *   sgbeat_t det;  sgbeat_init(&det, 0.5f, 90u, 72u);
 *   for each sample t with score s:
 *       sgbeat_event_t ev;
 *       if (sgbeat_update(&det, t, s, &ev)) ... ev.index, ev.score, ev.emitted_index
 */
#ifndef SGBEAT_H
#define SGBEAT_H

#include <stdint.h>

typedef struct {
    float threshold;
    uint32_t refractory; /* samples */
    uint32_t max_wait;   /* samples, >= 1 */
    uint8_t in_run, run_done, has_last, started;
    uint32_t run_start, peak_index, last_beat;
    float peak_score;
    uint32_t n_beats, n_suppressed, n_unstarted;
} sgbeat_t;

typedef struct {
    uint32_t index;         /* sample of the beat (the run's score maximum) */
    float score;            /* the score there */
    uint32_t emitted_index; /* sample at which it was decided */
} sgbeat_event_t;

void sgbeat_init(sgbeat_t *det, float threshold, uint32_t refractory, uint32_t max_wait);
/** Feed the score of sample `index` (consecutive indices); 1 when a beat was decided. */
int sgbeat_update(sgbeat_t *det, uint32_t index, float score, sgbeat_event_t *ev);

#endif
