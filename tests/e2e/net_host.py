#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
#
# The host end of tests/e2e/net.t: talks to the net-echo test guest while
# it runs under khyve and prints one result line per check ("PASS what" or
# "FAIL what: why"), which net.t turns into TAP.
#
#   net_host.py tap IFNAME GUEST_IP GUEST_MAC HELLO_PORT
#       run inside the test's network namespace, where IFNAME (the VM's
#       tap) has an address in GUEST_IP's subnet: waits for the guest's
#       "hello" datagram on HELLO_PORT (a frame the guest sent, also seen
#       on a raw packet socket on the tap, from GUEST_MAC), then sends UDP
#       datagrams to GUEST_IP:7 with a normal socket and checks the echoes
#       (the kernel resolves the guest by ARP first, and the neighbour
#       table must then hold GUEST_MAC), then sends "quit".
#   net_host.py slirp SERIAL_FILE UDP_PORT TCP_PORT
#       waits for "net-echo: ready" in SERIAL_FILE, then reaches the
#       guest's hostfwd'ed UDP and TCP echo ports on 127.0.0.1, then sends
#       "quit".
#
# Single-threaded; every wait has a deadline (the guest's ring 0 is slow
# on this machine: seconds per exchange are normal).
import os
import socket
import sys
import time

DEADLINE = 90


def say(ok, what, why=""):
    print(("PASS " if ok else "FAIL ") + what + ("" if ok else ": " + why))
    sys.stdout.flush()


def udp_echo(dst, msg, tries=6, wait=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(wait)
    try:
        for _ in range(tries):
            s.sendto(msg, dst)
            try:
                while True:
                    data, _src = s.recvfrom(2048)
                    if data == msg:
                        return True, ""
            except socket.timeout:
                continue
        return False, "no echo of %r after %d tries" % (msg, tries)
    finally:
        s.close()


def mac_str(b):
    return ":".join("%02x" % x for x in b)


def tap_mode(ifname, guest_ip, guest_mac, hello_port):
    guest_mac = guest_mac.lower()
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    raw.bind((ifname, 0))
    raw.settimeout(0.5)
    hello = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hello.bind(("0.0.0.0", hello_port))
    hello.settimeout(0.5)
    end = time.time() + DEADLINE
    got_hello = None
    raw_seen = False
    while time.time() < end and not (got_hello and raw_seen):
        try:
            data, src = hello.recvfrom(2048)
            got_hello = (data, src)
        except socket.timeout:
            pass
        try:
            while True:
                frame = raw.recv(65536)
                if mac_str(frame[6:12]) == guest_mac:
                    raw_seen = True
        except socket.timeout:
            pass
    if got_hello:
        say(got_hello[0].startswith(b"hello from") and
            got_hello[1][0] == guest_ip,
            "guest's hello datagram received",
            "got %r from %s" % (got_hello[0], got_hello[1][0]))
    else:
        say(False, "guest's hello datagram received", "nothing in time")
    say(raw_seen, "frame from the guest's MAC seen on the tap",
        "no frame from " + guest_mac)
    for i in range(3):
        ok, why = udp_echo((guest_ip, 7), b"ping %d over the tap" % i)
        say(ok, "UDP echo %d" % i, why)
    neigh = ""
    try:
        with open("/proc/net/arp") as f:
            neigh = f.read()
    except OSError:
        pass
    ok = any(l.split()[0] == guest_ip and l.split()[3].lower() == guest_mac
             for l in neigh.splitlines()[1:] if len(l.split()) > 3)
    say(ok, "ARP: the host resolved the guest to its MAC", neigh.strip())
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(3):
        s.sendto(b"quit", (guest_ip, 7))
        time.sleep(0.2)


def wait_ready(serial):
    end = time.time() + DEADLINE
    while time.time() < end:
        try:
            with open(serial, "rb") as f:
                if b"net-echo: ready" in f.read():
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def slirp_mode(serial, udp_port, tcp_port):
    if not wait_ready(serial):
        say(False, "guest ready", "no \"net-echo: ready\" line")
        return
    say(True, "guest ready")
    for i in range(2):
        ok, why = udp_echo(("127.0.0.1", udp_port),
                           b"ping %d through slirp" % i)
        say(ok, "UDP echo %d through hostfwd" % i, why)
    msg = b"hello over tcp through slirp hostfwd\n"
    try:
        c = socket.create_connection(("127.0.0.1", tcp_port), timeout=30)
        c.settimeout(30)
        c.sendall(msg)
        got = b""
        while len(got) < len(msg):
            d = c.recv(4096)
            if not d:
                break
            got += d
        say(got == msg, "TCP echo through hostfwd", "got %r" % got)
        c.shutdown(socket.SHUT_WR)
        rest = c.recv(4096)
        say(rest == b"", "TCP connection closed cleanly by the guest",
            "got %r" % rest)
        c.close()
    except OSError as e:
        say(False, "TCP echo through hostfwd", str(e))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(3):
        s.sendto(b"quit", ("127.0.0.1", udp_port))
        time.sleep(0.2)


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "tap":
        tap_mode(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif len(sys.argv) == 5 and sys.argv[1] == "slirp":
        slirp_mode(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        print("usage: net_host.py tap IF IP MAC PORT | slirp FILE UPORT "
              "TPORT", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
