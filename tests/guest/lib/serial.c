/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Polled 16550 output on COM1 and a small printf.  The formatter writes
 * through a sink callback so that printf (to the UART) and snprintf (to a
 * buffer) share it.
 *
 * Threads: any CPU.  console_lock (a spinlock taken with xchg) keeps lines
 * from different CPUs apart; an exception handler breaks it with
 * console_break_lock() so that a CPU faulting inside printf still reports.
 */
#include "guest.h"

#define UART_THR 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_DLL 0
#define UART_DLM 1
#define LSR_THRE 0x20
#define LCR_DLAB 0x80

static volatile uint32_t console_lock;

void serial_init(void)
{
	outb(COM1_PORT + UART_IER, 0);
	outb(COM1_PORT + UART_LCR, LCR_DLAB);
	outb(COM1_PORT + UART_DLL, 1); /* 115200 baud */
	outb(COM1_PORT + UART_DLM, 0);
	outb(COM1_PORT + UART_LCR, 0x03); /* 8N1 */
	outb(COM1_PORT + UART_FCR, 0x07); /* FIFO on, cleared */
	outb(COM1_PORT + UART_MCR, 0x03); /* DTR, RTS */
}

static void uart_tx(char c)
{
	unsigned int spins = 0;

	/* A missing UART reads 0xff, so THRE looks set: no hang. */
	while (!(inb(COM1_PORT + UART_LSR) & LSR_THRE) && spins++ < 100000)
		cpu_relax();
	outb(COM1_PORT + UART_THR, (uint8_t)c);
}

void serial_putc(char c)
{
	if (c == '\n')
		uart_tx('\r');
	uart_tx(c);
}

static void lock(void)
{
	while (atomic_xchg32(&console_lock, 1))
		while (console_lock)
			cpu_relax();
}

static void unlock(void)
{
	atomic_xchg32(&console_lock, 0);
}

void console_break_lock(void)
{
	console_lock = 0;
}

void puts_nonl(const char *s)
{
	lock();
	while (*s)
		serial_putc(*s++);
	unlock();
}

/* ---- formatter -------------------------------------------------------- */

struct sink {
	void (*put)(struct sink *s, char c);
	char *buf;
	size_t size;
	size_t len;
};

static void sink_put(struct sink *s, char c)
{
	s->put(s, c);
	s->len++;
}

static void put_uart(struct sink *s, char c)
{
	(void)s;
	serial_putc(c);
}

static void put_buf(struct sink *s, char c)
{
	if (s->size && s->len < s->size - 1)
		s->buf[s->len] = c;
}

static void emit_padded(struct sink *s, const char *str, size_t len,
			unsigned int width, bool left, char pad)
{
	size_t i;

	if (!left)
		for (i = len; i < width; i++)
			sink_put(s, pad);
	for (i = 0; i < len; i++)
		sink_put(s, str[i]);
	if (left)
		for (i = len; i < width; i++)
			sink_put(s, ' ');
}

static void emit_number(struct sink *s, uint64_t v, bool neg, unsigned base,
			bool upper, unsigned int width, bool left, bool zero)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	if (neg && zero && !left) {
		/* sign first, then the zeros */
		sink_put(s, '-');
		for (i = n + 1; i < width; i++)
			sink_put(s, '0');
		while (n)
			sink_put(s, tmp[--n]);
		return;
	}
	if (neg)
		tmp[n++] = '-';
	if (!left)
		for (i = n; i < width; i++)
			sink_put(s, zero ? '0' : ' ');
	for (i = n; i; i--)
		sink_put(s, tmp[i - 1]);
	if (left)
		for (i = n; i < width; i++)
			sink_put(s, ' ');
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
	const char *str;
	unsigned int width, lng;
	bool left, zero;
	int64_t sv;
	uint64_t uv;
	char c;

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			sink_put(s, *fmt);
			continue;
		}
		fmt++;
		left = zero = false;
		for (;; fmt++) {
			if (*fmt == '-')
				left = true;
			else if (*fmt == '0')
				zero = true;
			else
				break;
		}
		width = 0;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (unsigned int)(*fmt++ - '0');
		lng = 0;
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 'd':
		case 'i':
			sv = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			uv = sv < 0 ? (uint64_t)0 - (uint64_t)sv : (uint64_t)sv;
			emit_number(s, uv, sv < 0, 10, false, width, left,
				    zero);
			break;
		case 'u':
		case 'x':
		case 'X':
			uv = lng ? va_arg(ap, uint64_t)
				 : va_arg(ap, unsigned int);
			emit_number(s, uv, false, *fmt == 'u' ? 10 : 16,
				    *fmt == 'X', width, left, zero);
			break;
		case 'p':
			uv = (uintptr_t)va_arg(ap, void *);
			sink_put(s, '0');
			sink_put(s, 'x');
			emit_number(s, uv, false, 16, false, width, left, zero);
			break;
		case 's':
			str = va_arg(ap, const char *);
			if (!str)
				str = "(null)";
			emit_padded(s, str, strlen(str), width, left, ' ');
			break;
		case 'c':
			c = (char)va_arg(ap, int);
			emit_padded(s, &c, 1, width, left, ' ');
			break;
		case '%':
			sink_put(s, '%');
			break;
		case '\0':
			return;
		default:
			sink_put(s, '%');
			sink_put(s, *fmt);
			break;
		}
	}
}

int vprintf(const char *fmt, va_list ap)
{
	struct sink s = {.put = put_uart};

	lock();
	format(&s, fmt, ap);
	unlock();
	return (int)s.len;
}

int printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vprintf(fmt, ap);
	va_end(ap);
	return n;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct sink s = {.put = put_buf, .buf = buf, .size = size};

	format(&s, fmt, ap);
	if (size)
		buf[s.len < size ? s.len : size - 1] = '\0';
	return (int)s.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
