/*
 * CRC-32C (Castagnoli), the checksum of the replication link (docs/colo-protocol.md).
 * The usual conditioning: crc32c(0, "123456789", 9) == 0xe3069283, and a running value
 * chains, crc32c(crc32c(0, a, la), b, lb) == crc32c(0, a || b, la + lb).
 */
#ifndef _CRC32C_H_
#define _CRC32C_H_

#include <stddef.h>
#include <stdint.h>

/* The SSE4.2 instruction when the CPU has it (and PCLMUL), the table otherwise.  Thread-safe. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
/* The portable table version, always; exported so that tests can compare the two. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
