/* The one monotonic clock of both processes. */
#ifndef TGRUN_CLOCK_H
#define TGRUN_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds and in microseconds. */
int64_t clock_ms(void);
int64_t clock_us(void);

#endif
