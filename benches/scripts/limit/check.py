#!/usr/bin/env python3
"""Checks the limit test's end state: `check.py PODS.json POOLS.json EXPECTED_PODS`.

Prints `running`, `duplicates` and `leaked` lines and exits 1 if the state is wrong:
- running: pods whose phase is Running, of the expected count;
- duplicates: Running pods sharing an address, plus Running pods whose address is not
  recorded for them (same pod and uid) in a pool;
- leaked: pool records held by no Running pod, plus the difference between the pools'
  allocatedIPCount and the Running pods.
"""
import json
import sys


def main():
    pods = json.load(open(sys.argv[1]))["items"]
    pools = json.load(open(sys.argv[2]))["items"]
    expected = int(sys.argv[3])
    running = [p for p in pods if p.get("status", {}).get("phase") == "Running"]
    records = {}
    allocated = 0
    for pool in pools:
        status = pool.get("status", {})
        allocated += status.get("allocatedIPCount", 0) or 0
        for ip, rec in json.loads(status.get("allocatedIPs") or "{}").items():
            records[ip] = rec
    by_ip = {}
    for p in running:
        for i in p["status"].get("podIPs", []):
            by_ip.setdefault(i["ip"], []).append(p)
    shared = sum(len(ps) for ps in by_ip.values() if len(ps) > 1)
    unrecorded = 0
    holders = set()
    for ip, ps in by_ip.items():
        for p in ps:
            meta = p["metadata"]
            rec = records.get(ip)
            who = f'{meta.get("namespace", "default")}/{meta["name"]}'
            if rec is None or rec.get("pod") != who or rec.get("podUid") != meta.get("uid"):
                unrecorded += 1
            else:
                holders.add(ip)
    no_ip = sum(1 for p in running if not p["status"].get("podIPs"))
    stray = sum(1 for ip in records if ip not in holders)
    count_gap = abs(allocated - len(running))
    pending = [p for p in pods if p.get("status", {}).get("phase") != "Running"]
    print(f"running:    {len(running)}/{expected}")
    print(f"duplicates: {shared + unrecorded + no_ip} (shared {shared}, not recorded {unrecorded}, no IP {no_ip})")
    print(f"leaked:     {stray + count_gap} (records without a Running pod {stray}, allocatedIPCount {allocated} vs Running {len(running)})")
    if pending:
        msgs = sorted({p.get("status", {}).get("message", "") for p in pending})
        print(f"pending:    {len(pending)} e.g. {msgs[:3]}")
    ok = len(running) == expected == len(pods) and shared + unrecorded + no_ip == 0 and stray + count_gap == 0
    sys.exit(0 if ok else 1)


main()
