/* edgedigit: constant tables in read-only memory on every target. Hand-written.
 *
 * On AVR (Arduino Uno) `const` data is copied to the 2 KB of SRAM unless it is marked PROGMEM and read
 * with pgm_read_*; everywhere else the tables are plain `const` arrays read directly. */
#ifndef EDGEDIGIT_ROM_H
#define EDGEDIGIT_ROM_H

#include <stdint.h>

#if defined(__AVR__)
#include <avr/pgmspace.h>
#define EDGEDIGIT_ROM PROGMEM
#define EDGEDIGIT_ROM_I8(p) ((int8_t)pgm_read_byte(p))
#define EDGEDIGIT_ROM_U16(p) ((uint16_t)pgm_read_word(p))
#define EDGEDIGIT_ROM_I32(p) ((int32_t)pgm_read_dword(p))
#else
#define EDGEDIGIT_ROM
#define EDGEDIGIT_ROM_I8(p) (*(const int8_t *)(p))
#define EDGEDIGIT_ROM_U16(p) (*(const uint16_t *)(p))
#define EDGEDIGIT_ROM_I32(p) (*(const int32_t *)(p))
#endif

#endif /* EDGEDIGIT_ROM_H */
