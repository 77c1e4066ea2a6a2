/*
 * CRC-32C, after Mark Adler's crc32c.c (zlib licence): slice-by-8 tables everywhere, and on
 * x86-64 with SSE4.2 the crc32 instruction on three interleaved streams.
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

/*
 * The crc32 instruction has a latency of three cycles and a throughput of one per cycle, so
 * one dependent chain runs at a third of the possible speed.  Three independent streams over
 * adjacent blocks keep the unit busy; their CRCs are then combined by shifting the running
 * value over a block's worth of zeros (a linear map, tabulated once per block size) and
 * xoring in the next stream's value.
 */
#define CRC32C_LONG 8192U
#define CRC32C_SHORT 256U

/* Compiled for SSE4.2 whatever -march says; only called once the CPU is known to have it. */
#define CRC32C_HW __attribute__((target("sse4.2")))

static uint32_t crc32c_long[4][256];
static uint32_t crc32c_short[4][256];
static bool crc32c_have_hw;

/* Multiplies the 32x32 GF(2) matrix @mat by the vector @vec. */
static uint32_t gf2_matrix_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;

	for (; vec; vec >>= 1, mat++)
		if (vec & 1)
			sum ^= *mat;
	return sum;
}

static void gf2_matrix_square(uint32_t *square, const uint32_t *mat)
{
	int n;

	for (n = 0; n < 32; n++)
		square[n] = gf2_matrix_times(mat, mat[n]);
}

/* The operator that feeds @len zero bytes (a power of two) through the CRC register. */
static void crc32c_zeros_op(uint32_t *even, size_t len)
{
	uint32_t odd[32], row = 1;
	int n;

	odd[0] = CRC32C_POLY; /* one zero bit */
	for (n = 1; n < 32; n++) {
		odd[n] = row;
		row <<= 1;
	}
	gf2_matrix_square(even, odd); /* two bits */
	gf2_matrix_square(odd, even); /* four bits */
	/* Each square doubles the length, starting from one byte, until len runs out. */
	for (;;) {
		gf2_matrix_square(even, odd);
		len >>= 1;
		if (!len)
			return;
		gf2_matrix_square(odd, even);
		len >>= 1;
		if (!len)
			break;
	}
	memcpy(even, odd, sizeof(odd));
}

/* Tabulates the operator byte by byte, so that applying it costs four lookups. */
static void crc32c_zeros(uint32_t zeros[4][256], size_t len)
{
	uint32_t op[32], n;

	crc32c_zeros_op(op, len);
	for (n = 0; n < 256; n++) {
		zeros[0][n] = gf2_matrix_times(op, n);
		zeros[1][n] = gf2_matrix_times(op, n << 8);
		zeros[2][n] = gf2_matrix_times(op, n << 16);
		zeros[3][n] = gf2_matrix_times(op, n << 24);
	}
}

static uint32_t crc32c_shift(uint32_t zeros[4][256], uint32_t crc)
{
	return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^ zeros[2][(crc >> 16) & 0xff] ^
	       zeros[3][crc >> 24];
}

static CRC32C_HW uint64_t crc32c_hw_u64(uint64_t crc, const unsigned char *p)
{
	return __builtin_ia32_crc32di(crc, crc32c_load64(p));
}

/* Runs three streams over blocks of @block bytes while at least three blocks remain. */
static CRC32C_HW uint64_t crc32c_hw_3way(uint64_t crc0, const unsigned char **pp, size_t *len,
					 size_t block, uint32_t zeros[4][256])
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
		crc0 = crc32c_shift(zeros, (uint32_t)crc0) ^ crc1;
		crc0 = crc32c_shift(zeros, (uint32_t)crc0) ^ crc2;
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

	crc0 = crc32c_hw_3way(crc0, &p, &len, CRC32C_LONG, crc32c_long);
	crc0 = crc32c_hw_3way(crc0, &p, &len, CRC32C_SHORT, crc32c_short);
	for (; len >= 8; len -= 8, p += 8)
		crc0 = crc32c_hw_u64(crc0, p);
	for (; len; len--, p++)
		crc0 = __builtin_ia32_crc32qi((uint32_t)crc0, *p);
	return ~(uint32_t)crc0;
}

__attribute__((constructor)) static void crc32c_init(void)
{
	crc32c_init_sw();
	crc32c_zeros(crc32c_long, CRC32C_LONG);
	crc32c_zeros(crc32c_short, CRC32C_SHORT);
	/* Constructors may run before the one that fills the CPU model data. */
	__builtin_cpu_init();
	crc32c_have_hw = __builtin_cpu_supports("sse4.2");
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
