/*
 * arduino_ecg.ino - a 2-channel ECG front end (e.g. two AD8232 boards on A0 and A1) streaming
 * SGB1 frames over the USB serial port at 115200 baud.
 *
 * Sampling: Timer1 in CTC mode, prescaler 8, OCR1A = 5555 on a 16 MHz AVR (Uno, Nano, Mega):
 * 16e6 / 8 / 5556 = 359.97 Hz, announced exactly as fs = 2000000/5556 in the HELLO.
 * The interrupt reads both channels into device.c's ring of blocks; loop() answers the host and
 * sends DATA frames. Copy sgb1.h and sgb1.c next to this file before building (see README.md).
 *
 * On boards without an AVR Timer1 the sketch falls back to taking samples from loop() on a
 * micros() schedule (works, with more jitter).
 */
#include <Arduino.h>

extern "C" {
#include "device.h"
#include "sgb1.h"
}

static const sgb1_channel_t kChannels[2] = {
    /* 10-bit ADC, 0..1023 counts; AD8232 gain 1100 over 3.3 V: about 0.34 counts per uV.
     * Calibrate gain (counts per mV) and baseline (counts at 0 mV) for your own front end. */
    {341.0f, 512.0f, "mV", "LeadI"},
    {341.0f, 512.0f, "mV", "LeadII"},
};

static sgb1_hello_t hello = {
    0, /* session: set from an unconnected analog pin at boot */
    2000000UL, 5556UL, 2, SGB1_INT16, "arduino-ecg-01", "arduino_ecg 1.0.0", kChannels,
};

static sgbdev_t dev;

static int32_t read_adc(void *, uint8_t channel)
{
    return analogRead(channel == 0 ? A0 : A1);
}

static size_t write_serial(void *, const uint8_t *data, size_t len)
{
    return Serial.write(data, len);
}

static uint32_t read_micros(void *)
{
    return micros();
}

static void lock_irq(void *)
{
    noInterrupts();
}

static void unlock_irq(void *)
{
    interrupts();
}

#if defined(__AVR__)
ISR(TIMER1_COMPA_vect)
{
    sgbdev_on_tick(&dev);
}

static void start_timer(void)
{
    noInterrupts();
    TCCR1A = 0;
    TCCR1B = _BV(WGM12) | _BV(CS11); /* CTC, prescaler 8 */
    TCNT1 = 0;
    OCR1A = 5555;
    TIMSK1 = _BV(OCIE1A);
    interrupts();
}
#else
static uint32_t next_tick_us;
static void start_timer(void)
{
    next_tick_us = micros();
}
#endif

void setup()
{
    Serial.begin(115200);
    randomSeed(analogRead(A5));
    hello.session = ((uint32_t)random(0x10000) << 16) ^ (uint32_t)random(0x10000) ^ micros();
    sgbdev_io_t io = {read_adc, write_serial, read_micros, lock_irq, unlock_irq, nullptr};
    sgbdev_init(&dev, &io, &hello, 1); /* stream at once; START/STOP still work */
    start_timer();
}

void loop()
{
#if !defined(__AVR__)
    const uint32_t period_us = 2778; /* 5556 * 8 / 16 */
    while ((int32_t)(micros() - next_tick_us) >= 0) {
        sgbdev_on_tick(&dev);
        next_tick_us += period_us;
    }
#endif
    while (Serial.available() > 0) {
        sgbdev_on_byte(&dev, (uint8_t)Serial.read());
    }
    sgbdev_poll(&dev);
}
