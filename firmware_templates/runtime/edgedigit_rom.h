/* edgedigit: constants in read-only memory on every target. Hand-written; shipped with every firmware
 * project (used by the protocol's strings and the linear and native backends' tables).
 *
 * On AVR (Arduino Uno) string literals and `const` data are copied to the 2 KB of SRAM at start-up unless
 * they are marked PROGMEM and read with pgm_read_*; everywhere else they are plain `const` data read
 * directly, and these macros vanish.
 *
 *   EDGEDIGIT_ROM            placed after a `static const` array: keep it in flash
 *   EDGEDIGIT_ROM_I8/U16/I32 read one element of such an array
 *   EDGEDIGIT_ROM_STR("...") a string literal kept in flash (inside a function only)
 *   EDGEDIGIT_ROM_CHAR(p)    read one char of such a string
 *   EDGEDIGIT_ROM_STRUCT(type, obj, copy)  a `const type *` to the contents of such a struct: on AVR
 *                            copied into `copy` (a variable that can hold it; memcpy_P), elsewhere &obj itself
 */
#ifndef EDGEDIGIT_ROM_H
#define EDGEDIGIT_ROM_H

#include <stdint.h>

#if defined(__AVR__)
#include <avr/pgmspace.h>
#define EDGEDIGIT_ROM PROGMEM
#define EDGEDIGIT_ROM_I8(p) ((int8_t)pgm_read_byte(p))
#define EDGEDIGIT_ROM_U16(p) ((uint16_t)pgm_read_word(p))
#define EDGEDIGIT_ROM_I32(p) ((int32_t)pgm_read_dword(p))
#define EDGEDIGIT_ROM_STR(s) PSTR(s)
#define EDGEDIGIT_ROM_CHAR(p) ((char)pgm_read_byte(p))
#define EDGEDIGIT_ROM_STRUCT(type, obj, copy) ((const type *)memcpy_P(&(copy), &(obj), sizeof(type)))
#else
#define EDGEDIGIT_ROM
#define EDGEDIGIT_ROM_I8(p) (*(const int8_t *)(p))
#define EDGEDIGIT_ROM_U16(p) (*(const uint16_t *)(p))
#define EDGEDIGIT_ROM_I32(p) (*(const int32_t *)(p))
#define EDGEDIGIT_ROM_STR(s) (s)
#define EDGEDIGIT_ROM_CHAR(p) (*(const char *)(p))
#define EDGEDIGIT_ROM_STRUCT(type, obj, copy) (&(obj))
#endif

#endif /* EDGEDIGIT_ROM_H */
