/*
 * CRC-32C, after Mark Adler's crc32c.c (zlib licence): slice-by-8 tables everywhere, and on
 * x86-64 with SSE4.2 and PCLMUL the crc32 instruction on three interleaved streams.
 *
 * The tables are filled by a constructor, before main() and before any thread exists, so
 * that the hot path has neither a lock nor a once-check and the tables are never written
 * while read.
 */
#include <endian.h>
#include <stdbool.h>
#include <string.h>

#include "crc32c.h"

#define CRC32C_POLY 0x82f63b78U /* reflected */

static uint32_t crc32c_table[8][256];

static uint64_t crc32c_load64(const unsigned char *p)
{
	uint64_t v;

	/* memcpy: the buffer may sit anywhere, and an unaligned dereference is UB. */
	memcpy(&v, p, sizeof(v));
	return v;
}

static void crc32c_init_sw(void)
{
	uint32_t n, crc;
	int k;

	for (n = 0; n < 256; n++) {
		crc = n;
		for (k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ CRC32C_POLY : crc >> 1;
		crc32c_table[0][n] = crc;
	}
	for (n = 0; n < 256; n++) {
		crc = crc32c_table[0][n];
		for (k = 1; k < 8; k++) {
			crc = crc32c_table[0][crc & 0xff] ^ (crc >> 8);
			crc32c_table[k][n] = crc;
		}
	}
}

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t w;

	crc = ~crc;
	while (len >= 8) {
		/* Little-endian order is what the reflected CRC consumes, whatever the host. */
		w = le64toh(crc32c_load64(p)) ^ crc;
		crc = crc32c_table[7][w & 0xff] ^ crc32c_table[6][(w >> 8) & 0xff] ^
		      crc32c_table[5][(w >> 16) & 0xff] ^ crc32c_table[4][(w >> 24) & 0xff] ^
		      crc32c_table[3][(w >> 32) & 0xff] ^ crc32c_table[2][(w >> 40) & 0xff] ^
		      crc32c_table[1][(w >> 48) & 0xff] ^ crc32c_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

#if defined(__x86_64__)

#include <immintrin.h>

/*
 * The crc32 instruction has a latency of three cycles and a throughput of one per cycle, so
 * one dependent chain runs at a third of the possible speed.  Three independent streams over
 * adjacent blocks keep the unit busy; their CRCs are then combined by shifting the running
 * value over a block's worth of zeros and xoring in the next stream's value.  The shift is a
 * carry-less multiplication by a constant, folded back to 32 bits by the crc32 instruction:
 * no table, because tables left the cache between two writes in tapdisk cost more than the
 * CRC itself (0.68 against 0.32 us per 4 KiB, docs/performance.md).
 */
#define CRC32C_LONG 8192U
#define CRC32C_SHORT 256U

/* Compiled for SSE4.2 and PCLMUL whatever -march says; only called once the CPU has both. */
#define CRC32C_HW __attribute__((target("sse4.2,pclmul")))

static uint32_t crc32c_k_long, crc32c_k_short; /* x^(8 * block - 33) mod P, reflected */
static bool crc32c_have_hw;

/* x^n mod P, reflected (bit 31 is x^0): 1 multiplied by x n times. */
static uint32_t crc32c_xpow(uint32_t n)
{
	uint32_t k = 0x80000000U;

	while (n--)
		k = k & 1 ? (k >> 1) ^ CRC32C_POLY : k >> 1;
	return k;
}

static CRC32C_HW uint64_t crc32c_hw_u64(uint64_t crc, const unsigned char *p)
{
	return __builtin_ia32_crc32di(crc, crc32c_load64(p));
}

/*
 * @crc fed with a block of zeros, given @k for that block: the product of the reflected
 * values is the polynomial times x (the 64-bit result's bit 0 is x^63), and the crc32
 * instruction over 8 bytes from zero multiplies by x^32 mod P; hence the 33 taken from k.
 */
static CRC32C_HW uint64_t crc32c_shift(uint64_t crc, uint32_t k)
{
	__m128i prod = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)(uint32_t)crc),
					    _mm_cvtsi32_si128((int)k), 0);

	return __builtin_ia32_crc32di(0, (uint64_t)_mm_cvtsi128_si64(prod));
}

/* Runs three streams over blocks of @block bytes while at least three blocks remain. */
static CRC32C_HW uint64_t crc32c_hw_3way(uint64_t crc0, const unsigned char **pp, size_t *len,
					 size_t block, uint32_t k)
{
	const unsigned char *p = *pp, *end;
	uint64_t crc1, crc2;

	while (*len >= 3 * block) {
		crc1 = 0;
		crc2 = 0;
		for (end = p + block; p < end; p += 8) {
			crc0 = crc32c_hw_u64(crc0, p);
			crc1 = crc32c_hw_u64(crc1, p + block);
			crc2 = crc32c_hw_u64(crc2, p + 2 * block);
		}
		crc0 = crc32c_shift(crc0, k) ^ crc1;
		crc0 = crc32c_shift(crc0, k) ^ crc2;
		p += 2 * block;
		*len -= 3 * block;
	}
	*pp = p;
	return crc0;
}

static CRC32C_HW uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t crc0 = ~crc;

	crc0 = crc32c_hw_3way(crc0, &p, &len, CRC32C_LONG, crc32c_k_long);
	crc0 = crc32c_hw_3way(crc0, &p, &len, CRC32C_SHORT, crc32c_k_short);
	for (; len >= 8; len -= 8, p += 8)
		crc0 = crc32c_hw_u64(crc0, p);
	for (; len; len--, p++)
		crc0 = __builtin_ia32_crc32qi((uint32_t)crc0, *p);
	return ~(uint32_t)crc0;
}

__attribute__((constructor)) static void crc32c_init(void)
{
	crc32c_init_sw();
	crc32c_k_long = crc32c_xpow(8 * CRC32C_LONG - 33);
	crc32c_k_short = crc32c_xpow(8 * CRC32C_SHORT - 33);
	/* Constructors may run before the one that fills the CPU model data. */
	__builtin_cpu_init();
	/* Every CPU with PCLMUL has SSE4.2; the few with only SSE4.2 (2008) take the table. */
	crc32c_have_hw = __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (crc32c_have_hw)
		return crc32c_hw(crc, buf, len);
	return crc32c_sw(crc, buf, len);
}

#else /* !__x86_64__ */

__attribute__((constructor)) static void crc32c_init(void)
{
	crc32c_init_sw();
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	return crc32c_sw(crc, buf, len);
}

#endif
