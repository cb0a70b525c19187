/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pcienum: lists every function on PCI bus 0 (all 8 functions of every
 * slot are probed, whatever the header type says) with its BARs and
 * capabilities, and checks it against the command line
 *     expect=B:D:F=VVVV:DDDD[,B:D:F=VVVV:DDDD...]
 * (bus, slot, function in decimal as in "-s 31,lpc"; vendor and device
 * in hex): every listed function present with that vendor:device, and
 * nothing else present.  Also checks the header types (a slot with
 * functions beyond 0 must have function 0 with the multi-function bit)
 * and, for every virtio function (vendor 0x1af4):
 *   - a transitional ID (0x1000-0x103f) has revision 0, the subsystem
 *     device ID of its virtio type and an I/O BAR0 for the legacy
 *     registers; a modern ID (0x1040+) has revision >= 1;
 *   - the vendor capabilities: common, notify (>= 20 bytes), ISR, PCI
 *     config access, and device config for types that have a config
 *     space, each window inside a 64-bit memory BAR of 16 KiB;
 *   - an MSI-X capability whose table and PBA lie inside memory BARs.
 * Without expect= it lists and checks the virtio functions only.
 * BSP only, ring 0.
 */
#include "guest.h"

const char guest_name[] = "pcienum";

#define MAX_EXPECT 64
#define MODERN_BAR_SIZE 0x4000

struct expect {
	unsigned int dev, fn;
	uint16_t vendor, device;
	bool seen;
};

static struct expect exp[MAX_EXPECT];
static unsigned int nexp;
static unsigned int errors;
static char list[CMDLINE_MAX];

static void error(const char *fmt, ...) __printf(1, 2);

static void error(const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("pcienum: ERROR: %s\n", msg);
	errors++;
}

/* Parse the number in s[0..len) in base 10 or 16; -1 if malformed. */
static int64_t num(const char *s, size_t len, unsigned int base)
{
	int64_t v = 0;
	size_t i;
	int d;

	if (len == 0 || len > 8)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (base == 16 && s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else if (base == 16 && s[i] >= 'A' && s[i] <= 'F')
			d = s[i] - 'A' + 10;
		else
			return -1;
		v = v * base + d;
	}
	return v;
}

static __noreturn void bad_entry(const char *s, size_t len)
{
	char bad[64];
	size_t i;

	for (i = 0; i < len && i + 1 < sizeof(bad); i++)
		bad[i] = s[i];
	bad[i] = 0;
	guest_fail("bad expect= entry \"%s\" (want B:D:F=VVVV:DDDD, bus 0)",
		   bad);
}

/* One "B:D:F=VVVV:DDDD" entry of length len. */
static void parse_entry(const char *s, size_t len)
{
	static const char sep[4] = {':', ':', '=', ':'};
	size_t start = 0, i;
	unsigned int k = 0;
	int64_t f[5];

	for (i = 0; i < len; i++) {
		if (k < 4 && s[i] == sep[k]) {
			f[k] = num(s + start, i - start, k < 3 ? 10 : 16);
			k++;
			start = i + 1;
		}
	}
	if (k == 4)
		f[4] = num(s + start, len - start, 16);
	if (k != 4 || f[0] != 0 || f[1] < 0 || f[1] > 31 || f[2] < 0 ||
	    f[2] > 7 || f[3] < 0 || f[3] > 0xffff || f[4] < 0 || f[4] > 0xffff)
		bad_entry(s, len);
	if (nexp == MAX_EXPECT)
		guest_fail("more than %u expect= entries", MAX_EXPECT);
	for (i = 0; i < nexp; i++)
		if (exp[i].dev == f[1] && exp[i].fn == f[2])
			guest_fail("expect= lists 0:%ld:%ld twice", f[1], f[2]);
	exp[nexp++] = (struct expect){(unsigned int)f[1], (unsigned int)f[2],
				      (uint16_t)f[3], (uint16_t)f[4], false};
}

static bool parse_expect(void)
{
	const char *p = list, *e;
	int rc = cmdline_get("expect", list, sizeof(list));

	if (rc == -GUEST_ENOENT)
		return false;
	if (rc < 0)
		guest_fail("expect= too long");
	while (*p) {
		for (e = p; *e && *e != ','; e++)
			;
		parse_entry(p, (size_t)(e - p));
		p = *e ? e + 1 : e;
	}
	return true;
}

static const char *bar_type(enum pci_bar_type t)
{
	switch (t) {
	case PCI_BAR_IO:
		return "I/O";
	case PCI_BAR_MEM32:
		return "mem32";
	case PCI_BAR_MEM64:
		return "mem64";
	default:
		return "none";
	}
}

static void list_bars(unsigned int dev, unsigned int fn,
		      struct pci_bar_info *bars)
{
	unsigned int i;
	int rc;

	for (i = 0; i < 6; i++) {
		rc = pci_bar_probe(0, dev, fn, i, &bars[i]);
		if (rc) {
			error("00:%02x.%u BAR%u: malformed (%d)", dev, fn, i,
			      rc);
			bars[i].type = PCI_BAR_NONE;
			continue;
		}
		if (bars[i].type == PCI_BAR_NONE)
			continue;
		printf("      BAR%u %-5s 0x%08lx size 0x%lx%s\n", i,
		       bar_type(bars[i].type), bars[i].addr, bars[i].size,
		       bars[i].prefetch ? " prefetchable" : "");
		if (bars[i].type == PCI_BAR_MEM64) {
			i++;
			bars[i].type = PCI_BAR_NONE;
		}
	}
}

static uint16_t legacy_type(uint16_t device)
{
	static const uint16_t ids[] = {1, 2, 5, 3, 8, 4, 0, 0, 0, 9};

	if (device - 0x1000u < ARRAY_SIZE(ids))
		return ids[device - 0x1000];
	return 0;
}

/* Check a window (bar, off, len) of a capability against the BARs. */
static void check_window(unsigned int dev, unsigned int fn,
			 const struct pci_bar_info *bars, const char *what,
			 unsigned int bar, uint64_t off, uint64_t len)
{
	const struct pci_bar_info *b;

	if (bar > 5) {
		error("00:%02x.%u %s: BAR index %u", dev, fn, what, bar);
		return;
	}
	b = &bars[bar];
	if (b->type != PCI_BAR_MEM64 || b->size != MODERN_BAR_SIZE)
		error("00:%02x.%u %s: BAR%u is %s of 0x%lx bytes, expected a "
		      "64-bit memory BAR of 16 KiB",
		      dev, fn, what, bar, bar_type(b->type), b->size);
	else if (off + len > b->size)
		error("00:%02x.%u %s: window 0x%lx+0x%lx outside BAR%u", dev,
		      fn, what, off, len, bar);
}

static void check_virtio(unsigned int dev, unsigned int fn, uint16_t device,
			 const struct pci_bar_info *bars)
{
	static const char *const names[] = {"?",   "common", "notify",
					    "isr", "device", "pci-cfg"};
	unsigned int found = 0, need, type, bar, clen, rev, vtype;
	uint32_t off, len, tbl, pba, nvec;
	int c = 0;

	rev = pci_cfg_read8(0, dev, fn, 0x08);
	if (device >= 0x1000 && device <= 0x103f) {
		vtype = pci_cfg_read16(0, dev, fn, 0x2e);
		if (rev != 0)
			error("00:%02x.%u transitional virtio with revision %u",
			      dev, fn, rev);
		if (legacy_type(device) && vtype != legacy_type(device))
			error("00:%02x.%u subsystem device %u, expected virtio "
			      "type %u",
			      dev, fn, vtype, legacy_type(device));
		if (bars[0].type != PCI_BAR_IO || bars[0].size < 32)
			error("00:%02x.%u legacy BAR0 is %s of %lu bytes", dev,
			      fn, bar_type(bars[0].type), bars[0].size);
	} else if (device >= 0x1040 && device <= 0x107f) {
		vtype = device - 0x1040u;
		if (rev < 1)
			error("00:%02x.%u modern virtio with revision 0", dev,
			      fn);
	} else {
		error("00:%02x.%u vendor 1af4 device %04x is not virtio", dev,
		      fn, device);
		return;
	}
	for (;;) {
		c = pci_cap_next(0, dev, fn, (unsigned int)c);
		if (c <= 0)
			break;
		type = pci_cfg_read8(0, dev, fn, (unsigned int)c);
		if (type == PCI_CAP_ID_MSIX) {
			nvec = (pci_cfg_read16(0, dev, fn,
					       (unsigned int)c + 2) &
				0x7ff) +
			       1u;
			tbl = pci_cfg_read32(0, dev, fn, (unsigned int)c + 4);
			pba = pci_cfg_read32(0, dev, fn, (unsigned int)c + 8);
			printf("      cap 0x%02x MSI-X, %u vectors, table "
			       "BAR%u+"
			       "0x%x, PBA BAR%u+0x%x\n",
			       c, nvec, tbl & 7, tbl & ~7u, pba & 7, pba & ~7u);
			if ((tbl & 7) > 5 || (pba & 7) > 5 ||
			    bars[tbl & 7].type < PCI_BAR_MEM32 ||
			    bars[pba & 7].type < PCI_BAR_MEM32 ||
			    (tbl & ~7u) + 16ull * nvec > bars[tbl & 7].size ||
			    (pba & ~7u) + 8ull * ((nvec + 63) / 64) >
				    bars[pba & 7].size)
				error("00:%02x.%u MSI-X table/PBA outside its "
				      "BAR",
				      dev, fn);
			found |= 1u << 8;
			continue;
		}
		if (type != PCI_CAP_ID_VNDR) {
			printf("      cap 0x%02x id 0x%02x\n", c, type);
			continue;
		}
		clen = pci_cfg_read8(0, dev, fn, (unsigned int)c + 2);
		type = pci_cfg_read8(0, dev, fn, (unsigned int)c + 3);
		bar = pci_cfg_read8(0, dev, fn, (unsigned int)c + 4);
		off = pci_cfg_read32(0, dev, fn, (unsigned int)c + 8);
		len = pci_cfg_read32(0, dev, fn, (unsigned int)c + 12);
		printf("      cap 0x%02x virtio %-7s BAR%u+0x%04x len 0x%x "
		       "(cap %u bytes)\n",
		       c, type <= 5 ? names[type] : "other", bar, off, len,
		       clen);
		if (clen < 16 || (type == 2 && clen < 20) ||
		    (type == 5 && clen < 20)) {
			error("00:%02x.%u virtio cap 0x%02x is %u bytes", dev,
			      fn, c, clen);
			continue;
		}
		if (type >= 1 && type <= 4 && !(found & (1u << type)))
			check_window(dev, fn, bars, names[type], bar, off, len);
		if (type == 2)
			printf("             notify_off_multiplier %u\n",
			       pci_cfg_read32(0, dev, fn,
					      (unsigned int)c + 16));
		if (type < 8)
			found |= 1u << type;
	}
	if (c < 0)
		error("00:%02x.%u malformed capability list", dev, fn);
	/* common, notify, isr, pci-cfg, MSI-X; device config if it has one */
	need = 1u << 1 | 1u << 2 | 1u << 3 | 1u << 5 | 1u << 8;
	if (vtype != 4)
		need |= 1u << 4; /* the entropy device has no config space */
	if ((found & need) != need)
		error("00:%02x.%u virtio capabilities missing (found 0x%x, "
		      "need 0x%x: bits 1 common 2 notify 3 isr 4 device 5 "
		      "pci-cfg 8 MSI-X)",
		      dev, fn, found, need);
}

static void check_func(unsigned int dev, unsigned int fn, uint32_t id)
{
	uint16_t vendor = (uint16_t)id, device = (uint16_t)(id >> 16);
	struct pci_bar_info bars[6];
	uint32_t class = pci_cfg_read32(0, dev, fn, 0x08) >> 8;
	uint8_t hdr = pci_cfg_read8(0, dev, fn, 0x0e);
	unsigned int i;

	printf("  00:%02x.%u %04x:%04x class %06x header 0x%02x\n", dev, fn,
	       vendor, device, class, hdr);
	for (i = 0; i < nexp; i++) {
		if (exp[i].dev != dev || exp[i].fn != fn)
			continue;
		exp[i].seen = true;
		if (exp[i].vendor != vendor || exp[i].device != device)
			error("0:%u:%u is %04x:%04x, expected %04x:%04x", dev,
			      fn, vendor, device, exp[i].vendor, exp[i].device);
		break;
	}
	if (nexp && i == nexp)
		error("0:%u:%u (%04x:%04x) is present but not expected", dev,
		      fn, vendor, device);
	if ((hdr & 0x7f) != 0) {
		error("00:%02x.%u header type 0x%02x (expected type 0)", dev,
		      fn, hdr);
		return;
	}
	list_bars(dev, fn, bars);
	if (vendor == VIRTIO_VENDOR)
		check_virtio(dev, fn, device, bars);
}

void guest_main(void)
{
	unsigned int dev, fn, nfound = 0, i;
	bool have_list = parse_expect();
	uint32_t id;

	printf("pcienum: PCI bus 0, %u functions expected\n", nexp);
	for (dev = 0; dev < 32; dev++) {
		for (fn = 0; fn < 8; fn++) {
			id = pci_cfg_read32(0, dev, fn, 0);
			if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0)
				continue;
			nfound++;
			check_func(dev, fn, id);
			if (fn == 0)
				continue;
			if (!pci_func_present(0, dev, 0))
				error("00:%02x.%u present without function 0",
				      dev, fn);
			else if (!(pci_cfg_read8(0, dev, 0, 0x0e) & 0x80))
				error("00:%02x.%u present but function 0 lacks "
				      "the multi-function bit",
				      dev, fn);
		}
	}
	for (i = 0; i < nexp; i++)
		if (!exp[i].seen)
			error("0:%u:%u (%04x:%04x) expected but absent",
			      exp[i].dev, exp[i].fn, exp[i].vendor,
			      exp[i].device);
	printf("pcienum: %u functions found%s\n", nfound,
	       have_list ? "" : " (no expect= list given)");
	if (errors)
		guest_fail("%u mismatches (see ERROR lines)", errors);
	guest_pass();
}
