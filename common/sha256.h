/* sha256.h — SHA-256 (FIPS 180-4) for content hashes: spec canonical form, JIT cache keys,
 * cache-entry integrity. Small and dependency-free on purpose. */
#ifndef RC_SHA256_H
#define RC_SHA256_H
#include <stddef.h>
#include <stdint.h>

typedef struct { uint32_t h[8]; uint64_t len; uint8_t buf[64]; size_t n; } rc_sha256;

void rc_sha256_init(rc_sha256 *s);
void rc_sha256_update(rc_sha256 *s, const void *data, size_t len);
void rc_sha256_final(rc_sha256 *s, uint8_t out[32]);
/* One-shot: 64 lowercase hex chars + NUL. */
void rc_sha256_hex(const void *data, size_t len, char hex[65]);
void rc_sha256_to_hex(const uint8_t d[32], char hex[65]);
#endif
