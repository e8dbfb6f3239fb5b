#!/usr/bin/env python3
"""Deterministic data sets for the replication and backup benchmarks.

  gen_tree.py create DIR [--scale S]   about 2 GiB at S=1: 50,000 small files
                                        (0.5-8 KiB) in 1,000 directories, 300
                                        medium ones (1-4 MiB), 4 large ones
                                        (256 MiB, made of repeated 1 MiB blocks)
  gen_tree.py change DIR SEED          a ~1 % change: scattered 4 KiB overwrites
                                        in the large files, a 1 KiB insertion in
                                        the middle of one, 500 edited, 500 new
                                        and 500 deleted small files, 10 medium
                                        files partly rewritten
  gen_tree.py db FILE [--gib N]        a database-like file: N GiB (default 4)
  gen_tree.py pages FILE SEED [N]      N (default 10,000) random 8 KiB page
                                        writes at 8 KiB-aligned offsets, in place

Bytes come from AES-CTR keystreams (openssl), so every run builds the same tree.
"""
import os
import random
import subprocess
import sys


class Stream:
    def __init__(self, seed):
        key = ("%032x" % (seed * 0x9E3779B97F4A7C15 % (1 << 128)))
        self.p = subprocess.Popen(
            ["openssl", "enc", "-aes-128-ctr", "-nosalt", "-K", key, "-iv", "0" * 32, "-in", "/dev/zero"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=1 << 20)

    def read(self, n):
        return self.p.stdout.read(n)

    def close(self):
        self.p.kill()
        self.p.wait()


def create(root, scale):
    rng = random.Random(1)
    s = Stream(1)
    n_small = int(50000 * scale)
    for i in range(n_small):
        d = os.path.join(root, "small", "d%03d" % (i % 1000))
        if i < 1000:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "f%05d.txt" % i), "wb") as f:
            f.write(s.read(rng.randint(512, 8192)))
    os.makedirs(os.path.join(root, "medium"), exist_ok=True)
    for i in range(int(300 * scale)):
        with open(os.path.join(root, "medium", "m%03d.bin" % i), "wb") as f:
            f.write(s.read(rng.randint(1 << 20, 4 << 20)))
    os.makedirs(os.path.join(root, "large"), exist_ok=True)
    blocks = [s.read(1 << 20) for _ in range(64)]
    for i in range(4):
        with open(os.path.join(root, "large", "l%d.img" % i), "wb") as f:
            for _ in range(int(256 * scale)):
                f.write(blocks[rng.randrange(len(blocks))])
    s.close()


def change(root, seed):
    rng = random.Random(seed)
    s = Stream(seed + 100)
    large = sorted(os.listdir(os.path.join(root, "large")))
    for name in large:
        path = os.path.join(root, "large", name)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            for _ in range(200):
                f.seek(rng.randrange(0, size - 4096))
                f.write(s.read(4096))
    path = os.path.join(root, "large", large[0])
    with open(path, "rb") as f:
        data = f.read()
    mid = len(data) // 2
    with open(path + ".tmp", "wb") as f:
        f.write(data[:mid] + s.read(1024) + data[mid:])
    os.rename(path + ".tmp", path)
    small = os.path.join(root, "small")
    dirs = sorted(os.listdir(small))
    files = []
    for d in dirs:
        files += [os.path.join(small, d, n) for n in sorted(os.listdir(os.path.join(small, d)))]
    picks = rng.sample(files, 1000)
    for p in picks[:500]:
        with open(p, "wb") as f:
            f.write(s.read(rng.randint(512, 8192)))
    for p in picks[500:]:
        os.unlink(p)
    for i in range(500):
        d = os.path.join(small, dirs[rng.randrange(len(dirs))])
        with open(os.path.join(d, "new-%d-%d.txt" % (seed, i)), "wb") as f:
            f.write(s.read(rng.randint(512, 8192)))
    medium = os.path.join(root, "medium")
    for n in rng.sample(sorted(os.listdir(medium)), 10):
        with open(os.path.join(medium, n), "r+b") as f:
            f.seek(rng.randrange(0, 1 << 20))
            f.write(s.read(256 * 1024))
    s.close()


def db(path, gib):
    s = Stream(7)
    with open(path, "wb") as f:
        for _ in range(int(gib * 1024)):
            f.write(s.read(1 << 20))
    s.close()


def pages(path, seed, n):
    rng = random.Random(seed)
    s = Stream(seed + 1000)
    npages = os.path.getsize(path) // 8192
    fd = os.open(path, os.O_WRONLY)
    try:
        for _ in range(n):
            os.pwrite(fd, s.read(8192), rng.randrange(npages) * 8192)
    finally:
        os.close(fd)
    s.close()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "create":
        scale = float(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--scale" else 1.0
        create(sys.argv[2], scale)
    elif len(sys.argv) == 4 and sys.argv[1] == "change":
        change(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "db":
        db(sys.argv[2], float(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--gib" else 4.0)
    elif len(sys.argv) in (4, 5) and sys.argv[1] == "pages":
        pages(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) == 5 else 10000)
    else:
        sys.exit(__doc__)
