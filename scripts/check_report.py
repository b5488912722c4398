#!/usr/bin/env python3
"""Renders an `snn report` HTML file in headless Chromium and checks that every figure drew.

Usage:
    python3 scripts/check_report.py REPORT.html [--screenshot OUT.png] [--chromium chromium]

Needs Debian's `chromium` package and Pillow. Checks, after Chromium has parsed and laid out the
page (`--dump-dom`): as many <svg> elements as the file has; every figure with a title, labelled
axes (x and y label texts, except bar charts' empty x label) and drawn marks (a polyline, bar,
heatmap cell or circle); nothing loaded from the network (no src= or href=). Then it takes a
full-page screenshot (for people) and renders each figure alone, checking that its plot area
holds coloured marks.
Exits 1 with a line per problem; prints the figure count and the screenshot's path on success.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("report")
    parser.add_argument("--screenshot", default=None)
    parser.add_argument("--chromium", default="chromium")
    args = parser.parse_args()
    from PIL import Image

    url = "file://" + os.path.abspath(args.report)
    common = [args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    source = open(args.report, encoding="utf-8").read()
    problems = []
    svgs = re.findall(r"<svg\b.*?</svg>", dom, flags=re.S)
    if len(svgs) != source.count("<svg"):
        problems.append(f"Chromium parsed {len(svgs)} figures, the file has {source.count('<svg')}")
    if not svgs:
        problems.append("no figure at all")
    for i, svg in enumerate(svgs, 1):
        title = re.search(r'class="title"[^>]*>([^<]*)<', svg)
        name = title.group(1) if title else f"figure {i}"
        if not title or not title.group(1).strip():
            problems.append(f"figure {i} has no title")
        is_bar = 'class="bar"' in svg
        if not re.search(r'class="ylabel"[^>]*>[^<]+<', svg) or (not is_bar and not re.search(r'class="xlabel"[^>]*>[^<]+<', svg)):
            problems.append(f"{name}: an axis has no label")
        if not re.search(r'class="(series|bar|cell)"|<circle', svg):
            problems.append(f"{name}: nothing drawn")
    if re.search(r"\b(src|href)=", source):
        problems.append("the report loads something (src= or href=); it must be self-contained")

    shot = args.screenshot or os.path.join(tempfile.mkdtemp(), "report.png")
    height = 420 * (len(svgs) + 2) + 1500
    subprocess.run(common + [f"--window-size=1100,{height}", f"--screenshot={shot}", url], capture_output=True, timeout=120)
    if not os.path.exists(shot):
        problems.append("Chromium wrote no screenshot of the report")
    # Each figure alone, as Chromium draws it: marks beyond the frame and the text.
    folder = tempfile.mkdtemp()
    for i, svg in enumerate(svgs, 1):
        page, png = os.path.join(folder, f"figure{i}.html"), os.path.join(folder, f"figure{i}.png")
        with open(page, "w", encoding="utf-8") as f:
            f.write(f"<!DOCTYPE html><html><body style='margin:0'>{svg}</body></html>")
        subprocess.run(common + ["--window-size=640,360", f"--screenshot={png}", "file://" + page], capture_output=True, timeout=120)
        if not os.path.exists(png):
            problems.append(f"figure {i}: no screenshot")
            continue
        image = Image.open(png).convert("RGB")
        # The plot area (inside the axes' frame): coloured marks, not only white and greys.
        coloured = sum(1 for x in range(70, 470, 2) for y in range(40, 300, 2)
                       if (lambda p: max(p) - min(p) > 40)(image.getpixel((x, y))))
        if coloured < 50:
            problems.append(f"figure {i}: the plot area shows {coloured} coloured pixels (sampled); it did not draw")
    for p in problems:
        print(f"{args.report}: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"{args.report}: {len(svgs)} figures drew in Chromium; screenshot {shot}")


if __name__ == "__main__":
    main()
