/* fake_board.c - the example firmware on the host (see fake_board.h). */
#include "fake_board.h"

#include <string.h>

typedef struct {
    uint32_t index;   /* sample index of the tick being taken */
    double t_us;      /* fake clock */
    sgb1_write_fn write;
    void *ctx;
} board_t;

static const sgb1_channel_t channels[2] = {
    {200.0f, 512.0f, "mV", "MLII"},
    {200.0f, 512.0f, "mV", "V5"},
};

static const sgb1_hello_t hello = {
    0x5EED0001u, FAKE_FS_NUM, FAKE_FS_DEN, 2, SGB1_INT16, "fake-board-01", "arduino_ecg 1.0.0",
    channels,
};

const sgb1_hello_t *fake_hello(void)
{
    return &hello;
}

int32_t fake_adc_value(uint32_t index, uint8_t channel)
{
    return (int32_t)((index * 37u + channel * 101u) % 1024u);
}

static int32_t read_adc(void *ctx, uint8_t channel)
{
    return fake_adc_value(((board_t *)ctx)->index, channel);
}

static uint32_t micros(void *ctx)
{
    return (uint32_t)(uint64_t)((board_t *)ctx)->t_us;
}

static size_t write_out(void *ctx, const uint8_t *data, size_t len)
{
    board_t *b = (board_t *)ctx;
    return b->write(b->ctx, data, len);
}

static void send_command(sgbdev_t *dev, uint8_t type, uint16_t seq)
{
    uint8_t payload[14] = {SGB1_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    uint8_t frame[32];
    size_t n, i, len = (type == SGB1_TIME_SYNC) ? 14u : 6u;
    payload[1] = type;
    payload[4] = (uint8_t)(seq & 0xFFu);
    payload[5] = (uint8_t)(seq >> 8);
    if (type == SGB1_TIME_SYNC) {
        payload[6] = 0x40; /* host_time_us = 0x0102030405060740 */
        payload[7] = 0x07;
        payload[8] = 0x06;
        payload[9] = 0x05;
        payload[10] = 0x04;
        payload[11] = 0x03;
        payload[12] = 0x02;
        payload[13] = 0x01;
    }
    n = sgb1_encode_frame(payload, len, frame, sizeof frame);
    for (i = 0; i < n; i++) {
        sgbdev_on_byte(dev, frame[i]);
    }
}

int fake_board_run(const fake_scenario_t *sc, sgb1_write_fn write, void *ctx,
                   fake_result_t *result)
{
    static sgbdev_t dev; /* large: keep it off the stack */
    board_t board;
    sgbdev_io_t io;
    const double period_us = 1e6 * (double)FAKE_FS_DEN / (double)FAKE_FS_NUM;
    uint32_t tick;
    int started = 0;

    memset(&board, 0, sizeof board);
    memset(result, 0, sizeof *result);
    board.write = write;
    board.ctx = ctx;
    io.read_adc = read_adc;
    io.write = write_out;
    io.micros = micros;
    io.lock = NULL;
    io.unlock = NULL;
    io.ctx = &board;
    if (sgbdev_init(&dev, &io, &hello, 0) != SGB1_OK) {
        return SGB1_E_ARG;
    }
    send_command(&dev, SGB1_GET_INFO, 1);
    send_command(&dev, SGB1_START, 2);
    started = 1;
    for (tick = 0; tick < sc->ticks; tick++) {
        board.index = tick;
        board.t_us = tick * period_us;
        if (started && !dev.streaming) {
            result->stopped_samples++;
        }
        sgbdev_on_tick(&dev);
        if (tick == sc->ticks / 2) {
            send_command(&dev, SGB1_PING, 3);
            send_command(&dev, SGB1_TIME_SYNC, 4);
            send_command(&dev, 0x99, 5); /* unknown: NACK */
        }
        if (sc->stop_at && tick == sc->stop_at) {
            send_command(&dev, SGB1_STOP, 6);
        }
        if (sc->start_again_at && tick == sc->start_again_at) {
            send_command(&dev, SGB1_START, 7);
        }
        if (tick >= sc->stall_from && tick < sc->stall_from + sc->stall_ticks) {
            continue;
        }
        if (sc->poll_every == 0 || tick % sc->poll_every == 0) {
            sgbdev_poll(&dev);
        }
    }
    board.t_us = sc->ticks * period_us + 1e6; /* long enough: the last partial block goes out */
    sgbdev_poll(&dev);
    sgbdev_poll(&dev);
    result->overrun_samples = dev.overrun_samples;
    result->frames_sent = dev.frames_sent;
    result->dropped_frames = dev.dropped_frames;
    return SGB1_OK;
}
