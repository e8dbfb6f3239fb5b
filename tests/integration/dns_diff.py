#!/usr/bin/python3
"""Sends one corpus of queries to lifeboat and to NSD serving the same zone
(the zone file is `lifeboat dns zone`'s) and compares the answers section by
section: rcode, flags, each section's records, EDNS. Prints every difference;
exits 1 when one is not a documented choice (docs/format/dns.md,
"Differences from NSD").

Usage: dns_diff.py LIFEBOAT_PORT NSD_PORT ZONE
"""
import socket
import sys

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring

HOST = "127.0.0.1"
TIMEOUT = 2.0


def normalize(resp):
    """A response as comparable data; None for no response."""
    if resp is None:
        return None
    if isinstance(resp, dict):
        return resp

    def section(rrsets):
        out = set()
        for rrset in rrsets:
            for rd in rrset:
                out.add((rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype), rrset.ttl,
                         rd.to_text().lower()))
        return sorted(out)  # a list of tuples: set() of it compares records

    flags = resp.flags & (dns.flags.AA | dns.flags.TC | dns.flags.RD | dns.flags.RA | dns.flags.AD | dns.flags.CD)
    return {
        "rcode": dns.rcode.to_text(resp.rcode()),
        "flags": dns.flags.to_text(flags),
        "answer": section(resp.answer),
        "authority": section(resp.authority),
        "additional": section(resp.additional),
        "edns": None if resp.edns < 0 else {"version": resp.edns, "do": bool(resp.ednsflags & dns.flags.DO)},
    }


def send(port, q, tcp=False, raw=None):
    wire = raw if raw is not None else q.to_wire()
    try:
        if tcp:
            with socket.create_connection((HOST, port), timeout=TIMEOUT) as s:
                s.sendall(len(wire).to_bytes(2, "big") + wire)
                head = b""
                while len(head) < 2:
                    chunk = s.recv(2 - len(head))
                    if not chunk:
                        return None
                    head += chunk
                n = int.from_bytes(head, "big")
                body = b""
                while len(body) < n:
                    chunk = s.recv(n - len(body))
                    if not chunk:
                        return None
                    body += chunk
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(TIMEOUT)
                s.sendto(wire, (HOST, port))
                body, _ = s.recvfrom(65535)
    except (socket.timeout, ConnectionError):
        return None
    signed = q is not None and q.keyring is not None
    try:
        return dns.message.from_wire(body, keyring=KEYRING if signed else None, request_mac=q.mac if signed else b"")
    except Exception as e:  # a response dnspython cannot parse is itself a finding
        return {"unparseable": type(e).__name__ + ": " + str(e)}


KEYRING = dns.tsigkeyring.from_text({"lifeboat-test.": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"})


def corpus(zone):
    names = ["@", "ns1", "shop", "ShOp", "all", "www", "chain", "ext", "gone", "loop1", "a.b.deep", "b.deep", "deep",
             "txt", "big", "many", "_sip._tcp", "_tcp", "nothere", "x.nothere", "a.b.c.d.nothere"]
    types = ["A", "AAAA", "CNAME", "NS", "SOA", "MX", "TXT", "SRV", "CAA", "PTR", "ANY"]
    variants = {
        "udp": dict(use_edns=0, payload=1232),
        "udp-noedns": dict(use_edns=False),
        "udp-do": dict(use_edns=0, payload=1232, want_dnssec=True),
        "udp-512": dict(use_edns=0, payload=512),
        "tcp": dict(use_edns=0, payload=1232, tcp=True),
    }
    for n in names:
        fqdn = zone if n == "@" else n + "." + zone
        for t in types:
            for vname, v in variants.items():
                v = dict(v)
                tcp = v.pop("tcp", False)
                q = dns.message.make_query(fqdn, t, **v)
                q.flags &= ~dns.flags.RD
                yield f"{fqdn} {t} {vname}", q, tcp, None
    # Out of the zone, other classes, the header and EDNS edge cases.
    yield "out-of-zone", dns.message.make_query("example.net.", "A"), False, None
    yield "chaos-class", dns.message.make_query("version.bind.", "TXT", rdclass="CH"), False, None
    yield "edns-version-1", dns.message.make_query("shop." + zone, "A", use_edns=1), False, None
    q = dns.message.make_query("shop." + zone, "A")
    q.set_opcode(dns.opcode.STATUS)
    yield "opcode-status", q, False, None
    q = dns.message.make_query("shop." + zone, "A", use_edns=0)
    q.set_opcode(dns.opcode.UPDATE)
    yield "opcode-update", q, False, None
    q = dns.message.make_query("shop." + zone, "A", use_edns=0)
    wire = bytearray(q.to_wire())
    wire[4:6] = (0).to_bytes(2, "big")  # QDCOUNT 0, the question's bytes left as trailing garbage
    yield "qdcount-0-trailing", q, False, bytes(wire)
    q0 = dns.message.Message()
    q0.use_edns(0, 0, 1232)
    yield "no-question-edns", q0, False, None
    q = dns.message.make_query("shop." + zone, "A")
    q.flags |= dns.flags.QR
    yield "a-response", q, False, None
    q = dns.message.make_query("shop." + zone, "AXFR")
    yield "axfr-udp", q, False, None
    q = dns.message.make_query("shop." + zone, "A", use_edns=0)
    q.use_tsig(KEYRING, keyname="lifeboat-test.")
    yield "tsig-unknown-key", q, False, None


def documented(label, lb, nsd):
    """The differences docs/format/dns.md lists as choices: a reason, or None."""
    if lb is None or nsd is None or "unparseable" in lb or "unparseable" in nsd:
        return None
    t = label.split()[1] if len(label.split()) == 3 else ""
    only = lambda *keys: all(lb.get(k) == nsd.get(k) for k in lb.keys() | nsd.keys() if k not in keys)
    if t == "ANY" and only("answer") and set(lb["answer"]) < set(nsd["answer"]) and len(lb["answer"]) > 0:
        return "ANY is answered with one RRset (RFC 8482); NSD sends all"
    if label == "opcode-update" and only("edns") and lb["edns"] and nsd["edns"] is None:
        return "NOTIMP echoes the query's OPT (RFC 6891 section 7); NSD does not"
    if label == "qdcount-0-trailing" and only("flags") and lb["flags"] == "RD" and nsd["flags"] == "":
        return "FORMERR copies RD (RFC 1035 4.1.1); NSD clears it"
    if label == "no-question-edns" and only("rcode") and lb["rcode"] == "FORMERR" and nsd["rcode"] == "NOERROR":
        return "a query without a question is FORMERR (no DNS cookies); NSD answers NOERROR"
    if label == "axfr-udp" and only("rcode") and lb["rcode"] == "REFUSED" and nsd["rcode"] == "NOTIMP":
        return "zone transfers are REFUSED over UDP as over TCP; NSD answers NOTIMP over UDP"
    return None


def main():
    lb_port, nsd_port, zone = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    total = same = 0
    known, unknown = {}, []
    for label, q, tcp, raw in corpus(zone):
        total += 1
        lb = normalize(send(lb_port, q, tcp, raw))
        nsd = normalize(send(nsd_port, q, tcp, raw))
        if lb is None and nsd is None and label != "a-response":
            unknown.append((label + " (neither server answered)", lb, nsd))
            continue
        if label == "a-response" and (lb is not None or nsd is not None):
            unknown.append((label + " (a response was answered)", lb, nsd))
            continue
        if lb == nsd:
            same += 1
            continue
        reason = documented(label, lb, nsd)
        if reason:
            known[reason] = known.get(reason, 0) + 1
        else:
            unknown.append((label, lb, nsd))
    print(f"{total} queries: {same} identical, {sum(known.values())} documented differences, {len(unknown)} other")
    for reason, n in sorted(known.items()):
        print(f"  documented ({n}): {reason}")
    for label, lb, nsd in unknown[:40]:
        print(f"DIFFERENT {label}")
        for key in sorted(set((lb or {}).keys()) | set((nsd or {}).keys())):
            a, b = (lb or {}).get(key), (nsd or {}).get(key)
            if a != b:
                print(f"  {key}:\n    lifeboat: {a}\n    nsd:      {b}")
        if lb is None or nsd is None:
            print(f"    lifeboat: {'no answer' if lb is None else 'answered'}; nsd: {'no answer' if nsd is None else 'answered'}")
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())
