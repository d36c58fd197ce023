#!/usr/bin/env python3
"""What a classmate's laptop on the same network gets from one port of this machine.

Run inside the neighbour's network namespace: probe-neighbour.py IFACE ADDRESS PORT.
Connects to ADDRESS:PORT and, at the same time, watches IFACE for the answer to its SYN: a
SYN-ACK from ADDRESS:PORT counts even when the neighbour's own kernel then drops it (an
answer from 127.0.0.1 is a "martian" to it; an attacker's raw socket would not care).
Prints "answered" or "silent".
"""
import socket
import struct
import sys
import threading
import time

iface, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
sniffer.bind((iface, 0))
sniffer.settimeout(0.2)
answered = threading.Event()


def connect():
    client = socket.socket()
    client.settimeout(2)
    try:
        client.connect((address, port))
        answered.set()
    except OSError:
        pass
    finally:
        client.close()


thread = threading.Thread(target=connect)
thread.start()
deadline = time.time() + 2.5
while time.time() < deadline and not answered.is_set():
    try:
        frame = sniffer.recv(65535)
    except socket.timeout:
        continue
    ip = frame[14:]
    if len(ip) < 20 or ip[9] != 6:
        continue
    header = (ip[0] & 15) * 4
    tcp = ip[header:]
    if len(tcp) < 14:
        continue
    source = socket.inet_ntoa(ip[12:16])
    source_port = struct.unpack("!H", tcp[0:2])[0]
    syn_ack = tcp[13] & 0x12 == 0x12
    if source == address and source_port == port and syn_ack:
        answered.set()
thread.join()
print("answered" if answered.is_set() else "silent")
