/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vatapi: drives the first ATAPI device of the first AHCI controller with
 * the library's AHCI driver (PACKET commands with DMA), polled, in ring 0.
 * The medium is an ISO-like file made by the test script: 2048-byte
 * blocks, block b holding sectors 4b..4b+3 of the pattern of blkpat.c with
 * tag "iso9" and word "cdrom-sector"
 * (awk: printf "iso9 %010d %02d cdrom-sector\n").  The guest:
 *   - IDENTIFY PACKET DEVICE: an ATAPI CD-ROM (word 0 type 5);
 *   - TEST UNIT READY (through the UNIT ATTENTION of a fresh medium);
 *   - INQUIRY: peripheral type 5 (CD/DVD), removable;
 *   - READ CAPACITY: the block count against "blocks=" if given, 2048-byte
 *     blocks;
 *   - READ(10) of blocks 0-1, 16, the last block, and 32 blocks (64 KiB)
 *     at block 100, and checks the pattern;
 *   - READ(10) at and across the capacity, and WRITE(10): CHECK CONDITION
 *     with ILLEGAL REQUEST expected; the device must work afterwards.
 * BSP only, ring 0.
 */
#include "guest.h"

const char guest_name[] = "vatapi";

#define BIG_AT 100
#define BIG_N 32
#define MIN_BLOCKS 200
#define BUF_BYTES (BIG_N * ATAPI_SECTOR)

static const char tag[] = "iso9", word[] = "cdrom-sector";

static struct ahci_hba hba;
static struct ahci_port *port;
static uint8_t *buf;
static uint32_t nblocks;

static void read_check(uint32_t lba, uint16_t n, const char *what)
{
	unsigned int off;
	uint64_t bad;
	int rc;

	mem_clear(buf, (size_t)n * ATAPI_SECTOR);
	rc = atapi_read10(port, lba, n, buf);
	if (rc)
		guest_fail("%s: READ(10) of %u blocks at %u: error %d (sense "
			   "%x/%02x/%02x)",
			   what, n, lba, rc, port->sense_key, port->sense_asc,
			   port->sense_ascq);
	if (blkpat_check(buf, (uint64_t)lba * 4, n * 4u, tag, word, &bad, &off))
		guest_fail("%s: block %lu differs at byte %lu", what, bad / 4,
			   (bad % 4) * BLKPAT_SECTOR + off);
	printf("vatapi: %s: blocks %u-%u OK\n", what, lba, lba + n - 1);
}

static void setup(void)
{
	const uint16_t *id;
	unsigned int type;
	int rc;

	if (ahci_find(0, &hba))
		guest_fail("no AHCI controller (class 01/06/01) on bus 0");
	if ((rc = ahci_init(&hba, true)))
		guest_fail("AHCI set-up: %d", rc);
	port = ahci_port_of_type(&hba, AHCI_DEV_ATAPI, 0);
	if (!port)
		guest_fail("no ATAPI device on any port");
	if ((rc = ahci_identify(port)))
		guest_fail("IDENTIFY PACKET DEVICE: error %d (PxTFD 0x%x)", rc,
			   port->err_tfd);
	id = port->ident;
	type = (id[0] >> 8) & 0x1f;
	printf("vatapi: port %u: IDENTIFY PACKET DEVICE: model \"%s\" "
	       "serial \"%s\" firmware \"%s\", word 0 0x%04x\n",
	       port->num, port->model, port->serial, port->fwrev, id[0]);
	if ((id[0] >> 14) != 2)
		guest_fail("IDENTIFY PACKET DEVICE word 0 0x%04x: not ATAPI",
			   id[0]);
	if (type != 5)
		guest_fail("ATAPI device type %u, expected 5 (CD-ROM)", type);
	printf("vatapi: IDENTIFY says CD-ROM (type 5)\n");
}

static void test_inquiry(void)
{
	char vendor[9], product[17];
	unsigned int i;
	int rc;

	mem_clear(buf, 64);
	if ((rc = atapi_test_unit_ready(port)))
		guest_fail("TEST UNIT READY: error %d (sense %x/%02x/%02x)", rc,
			   port->sense_key, port->sense_asc, port->sense_ascq);
	printf("vatapi: TEST UNIT READY OK\n");
	if ((rc = atapi_inquiry(port, buf, 36)))
		guest_fail("INQUIRY: error %d (sense %x/%02x/%02x)", rc,
			   port->sense_key, port->sense_asc, port->sense_ascq);
	for (i = 0; i < 8; i++)
		vendor[i] = (char)buf[8 + i];
	vendor[8] = 0;
	for (i = 0; i < 16; i++)
		product[i] = (char)buf[16 + i];
	product[16] = 0;
	printf("vatapi: INQUIRY: type %u, %s, vendor \"%s\" product "
	       "\"%s\"\n",
	       buf[0] & 0x1f, buf[1] & 0x80 ? "removable" : "fixed", vendor,
	       product);
	if ((buf[0] & 0x1f) != 5)
		guest_fail("INQUIRY peripheral type %u, expected 5 (CD/DVD)",
			   buf[0] & 0x1f);
	if (!(buf[1] & 0x80))
		guest_fail("INQUIRY: the medium is not removable");
	printf("vatapi: INQUIRY says CD-ROM\n");
}

static void test_capacity(void)
{
	uint32_t last, blen;
	uint64_t want;
	int rc;

	if ((rc = atapi_read_capacity(port, &last, &blen)))
		guest_fail("READ CAPACITY: error %d (sense %x/%02x/%02x)", rc,
			   port->sense_key, port->sense_asc, port->sense_ascq);
	nblocks = last + 1;
	printf("vatapi: READ CAPACITY: %u blocks of %u bytes\n", nblocks, blen);
	if (blen != ATAPI_SECTOR)
		guest_fail("block length %u, expected %u", blen, ATAPI_SECTOR);
	if (cmdline_get_u64("blocks", &want) == 0) {
		if (want != nblocks)
			guest_fail("%u blocks, expected blocks=%lu", nblocks,
				   want);
		printf("vatapi: capacity matches blocks=%lu\n", want);
	}
	if (nblocks < MIN_BLOCKS)
		guest_fail("the medium needs at least %u blocks", MIN_BLOCKS);
}

/* Expect CHECK CONDITION with sense key ILLEGAL REQUEST. */
static void expect_illegal(int rc, const char *what)
{
	if (rc == 0)
		guest_fail("%s succeeded", what);
	if (rc != -GUEST_EIO)
		guest_fail("%s: error %d, expected CHECK CONDITION", what, rc);
	if (port->sense_key != SCSI_SENSE_ILLEGAL_REQUEST)
		guest_fail("%s: sense %x/%02x/%02x, expected ILLEGAL REQUEST",
			   what, port->sense_key, port->sense_asc,
			   port->sense_ascq);
	printf("vatapi: %s: ILLEGAL REQUEST, ASC/ASCQ %02x/%02x\n", what,
	       port->sense_asc, port->sense_ascq);
}

static void test_errors(void)
{
	uint8_t cdb[12] = {0x2a, 0, 0, 0, 0, 0, 0, 0, 1}; /* WRITE(10) */
	uint8_t key, asc, ascq;
	int rc;

	expect_illegal(atapi_read10(port, nblocks, 1, buf),
		       "READ(10) at the capacity");
	expect_illegal(atapi_read10(port, nblocks - 1, 2, buf),
		       "READ(10) across the capacity");
	expect_illegal(atapi_read10(port, 0xffffffffu, 1, buf),
		       "READ(10) at block 2^32-1");
	/* no data phase: the device must refuse before it asks for any */
	rc = atapi_packet(port, cdb, sizeof(cdb), NULL, 0);
	if (rc != -GUEST_EIO)
		guest_fail("WRITE(10) to a CD-ROM: %d, expected CHECK "
			   "CONDITION",
			   rc);
	if ((rc = atapi_request_sense(port, &key, &asc, &ascq)))
		guest_fail("REQUEST SENSE after WRITE(10): error %d", rc);
	if (key != SCSI_SENSE_ILLEGAL_REQUEST && key != 7 /* DATA PROTECT */)
		guest_fail("WRITE(10): sense %x/%02x/%02x, expected ILLEGAL "
			   "REQUEST or DATA PROTECT",
			   key, asc, ascq);
	printf("vatapi: WRITE(10): refused, sense %x/%02x/%02x\n", key, asc,
	       ascq);
	read_check(0, 1, "read after the errors");
	printf("vatapi: the device works after %u errors\n", port->errors);
}

void guest_main(void)
{
	buf = dma_zalloc(BUF_BYTES, 4096);
	if (!buf)
		guest_fail("out of memory");
	setup();
	test_inquiry();
	test_capacity();
	read_check(0, 2, "READ(10)");
	read_check(16, 1, "READ(10)");
	read_check(nblocks - 1, 1, "READ(10) of the last block");
	read_check(BIG_AT, BIG_N, "READ(10) of 64 KiB");
	test_errors();
	guest_pass();
}
