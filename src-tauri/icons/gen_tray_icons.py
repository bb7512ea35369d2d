#!/usr/bin/env python3
"""Draws the tray's state icons (stdlib only, so no image library is needed to rebuild them).

One 64x64 RGBA PNG per state into icons/tray/; 4x4 supersampling for smooth edges.
Idle and muted are template images on macOS (the menu bar draws their alpha in its own ink, so
they follow light and dark mode); their mid grey is what Linux trays show, readable on light and
dark panels. The active states keep their colour, chosen to contrast >= 3:1 with both a light
and a dark menu bar (src-tauri/src/tray.rs tests this). Run: python3 src-tauri/icons/gen_tray_icons.py
"""
import math
import os
import struct
import zlib

SIZE = 64
SS = 4  # supersampling per axis

INK = (128, 128, 128)
ACCENT = {
    "idle": INK,
    "listening": (30, 136, 229),
    "thinking": (156, 90, 200),
    "speaking": (32, 145, 62),
    "muted": INK,
    "error": (229, 57, 53),
}


def seg_dist(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy or 1)))
    return math.hypot(px - ax - t * dx, py - ay - t * dy)


def shapes(state):
    """Each shape: (color, inside(x, y) -> bool) in 0..64 coordinates."""
    c = ACCENT[state]
    ring = lambda x, y: 20 <= math.hypot(x - 32, y - 32) <= 26
    out = [(c, ring)]
    if state == "idle":
        out.append((c, lambda x, y: math.hypot(x - 32, y - 32) <= 6))
    elif state == "listening":
        out.append((c, lambda x, y: math.hypot(x - 32, y - 32) <= 14))
    elif state == "thinking":
        for cx in (21, 32, 43):
            out.append((c, lambda x, y, cx=cx: math.hypot(x - cx, y - 32) <= 4.5))
    elif state == "speaking":
        out.append((c, lambda x, y: abs(x - 26) <= 3 and abs(y - 32) <= 7))
        for r in (8, 14):
            out.append((c, lambda x, y, r=r: abs(math.hypot(x - 26, y - 32) - r) <= 2 and x > 28 and abs(y - 32) < r * 0.8))
    elif state == "muted":
        out.append((c, lambda x, y: math.hypot(x - 32, y - 32) <= 6))
        out.append((c, lambda x, y: seg_dist(x, y, 12, 12, 52, 52) <= 3.5))
    elif state == "error":
        out.append((c, lambda x, y: abs(x - 32) <= 3.5 and 16 <= y <= 36))
        out.append((c, lambda x, y: math.hypot(x - 32, y - 44) <= 4))
    return out


def render(state):
    rows = []
    parts = shapes(state)
    for j in range(SIZE):
        row = bytearray([0])  # filter: none
        for i in range(SIZE):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sj in range(SS):
                for si in range(SS):
                    x, y = i + (si + 0.5) / SS, j + (sj + 0.5) / SS
                    for color, inside in reversed(parts):  # last drawn wins
                        if inside(x, y):
                            acc[0] += color[0]
                            acc[1] += color[1]
                            acc[2] += color[2]
                            acc[3] += 1
                            break
            n = acc[3]
            if n:
                row += bytes([round(acc[0] / n), round(acc[1] / n), round(acc[2] / n), round(255 * n / SS / SS)])
            else:
                row += bytes(4)
        rows.append(bytes(row))
    return png(b"".join(rows))


def png(raw):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tray")
    os.makedirs(out, exist_ok=True)
    for state in ACCENT:
        with open(os.path.join(out, f"{state}.png"), "wb") as f:
            f.write(render(state))
        print(f"wrote tray/{state}.png")
