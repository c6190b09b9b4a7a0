/* semihost.h - output and exit through ARM semihosting (implemented in startup.c). */
#ifndef SG_SEMIHOST_H
#define SG_SEMIHOST_H

void sg_write0(const char *text);
void sg_exit(int code);

#endif
