/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The data pattern the storage guests (vahci, vatapi, vnvme) and their
 * test script (tests/e2e/storage.t) agree on, and fast comparisons.
 * 512-byte sector n holds 16 lines of 32 bytes,
 *     "TTTT %010u %02u WWWWWWWWWWWW\n"  (tag, sector number, line 0-15,
 *                                         a 12-character word)
 * which awk writes as printf "%s %010d %02d %s\n".  A 2048-byte CD block b
 * is sectors 4b..4b+3 of the same pattern.
 *
 * The comparisons use one rep cmps/scas instruction each: ring-0 code is
 * emulated on PVM, and a byte loop would cost a microsecond per byte.
 * No state, no locks; ring-3 safe.
 */
#include "guest.h"

static void copy_bytes(void *dst, const void *src, size_t n)
{
	__asm__ volatile("cld; rep movsb"
			 : "+D"(dst), "+S"(src), "+c"(n)
			 :
			 : "memory");
}

static void put_dec(uint8_t *p, uint64_t v, unsigned int width)
{
	while (width--) {
		p[width] = (uint8_t)('0' + v % 10);
		v /= 10;
	}
}

void blkpat_fill(void *buf, uint64_t sector, const char *tag, const char *word)
{
	uint8_t *p = buf;
	unsigned int i, k;

	/* the first line in full, the others copied and renumbered */
	for (k = 0; k < 4; k++)
		p[k] = (uint8_t)tag[k];
	p[4] = ' ';
	put_dec(p + 5, sector, 10);
	p[15] = ' ';
	put_dec(p + 16, 0, 2);
	p[18] = ' ';
	for (k = 0; k < 12; k++)
		p[19 + k] = (uint8_t)word[k];
	p[31] = '\n';
	for (i = 1; i < BLKPAT_SECTOR / 32; i++) {
		copy_bytes(p + 32 * i, p, 32);
		put_dec(p + 32 * i + 16, i, 2);
	}
}

size_t blk_mismatch(const void *a, const void *b, size_t n)
{
	const void *x = a, *y = b;
	size_t left = n;
	bool ne;

	if (n == 0)
		return 0;
	__asm__ volatile("cld; repe cmpsb"
			 : "+S"(x), "+D"(y), "+c"(left), "=@ccne"(ne)
			 :
			 : "memory");
	if (!ne)
		return n;
	return (size_t)((const uint8_t *)x - (const uint8_t *)a) - 1;
}

size_t blk_nonzero(const void *p, size_t n)
{
	const void *x = p;
	size_t left = n;
	bool ne;

	if (n == 0)
		return 0;
	__asm__ volatile("cld; repe scasb"
			 : "+D"(x), "+c"(left), "=@ccne"(ne)
			 : "a"(0)
			 : "memory");
	if (!ne)
		return n;
	return (size_t)((const uint8_t *)x - (const uint8_t *)p) - 1;
}

int blkpat_check(const void *buf, uint64_t first, unsigned int count,
		 const char *tag, const char *word, uint64_t *bad_sector,
		 unsigned int *bad_byte)
{
	static uint8_t expect[BLKPAT_SECTOR];
	const uint8_t *p = buf;
	unsigned int i;
	size_t off;

	for (i = 0; i < count; i++, p += BLKPAT_SECTOR) {
		blkpat_fill(expect, first + i, tag, word);
		off = blk_mismatch(p, expect, BLKPAT_SECTOR);
		if (off == BLKPAT_SECTOR)
			continue;
		*bad_sector = first + i;
		*bad_byte = (unsigned int)off;
		return -GUEST_EBADMSG;
	}
	return 0;
}
