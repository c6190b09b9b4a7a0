/*
 * startup.c - the smallest Cortex-M start-up that runs an exported streamgru model under
 * qemu-system-arm (-M mps2-an386, Cortex-M4F): vector table, .data copy, .bss zero, FPU on,
 * main(), and ARM semihosting (bkpt 0xAB) for output and the exit status.
 */
#include <stdint.h>

#include "semihost.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

static int sg_semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void sg_write0(const char *text)
{
    (void)sg_semihost(0x04, text); /* SYS_WRITE0 */
}

void sg_exit(int code)
{
    uint32_t block[2];
    block[0] = 0x20026u; /* ADP_Stopped_ApplicationExit */
    block[1] = (uint32_t)code;
    (void)sg_semihost(0x20, block); /* SYS_EXIT_EXTENDED: QEMU exits with `code` */
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss; ++dst) {
        *dst = 0u;
    }
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    sg_exit(main());
}

void Default_Handler(void)
{
    sg_write0("fault\n");
    sg_exit(99);
}

__attribute__((section(".isr_vector"), used)) void (*const sg_vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler,   Default_Handler, Default_Handler,
    Default_Handler,            Default_Handler, Default_Handler, 0,
    0,                          0,               0,               Default_Handler,
    Default_Handler,            0,               Default_Handler, Default_Handler,
};
