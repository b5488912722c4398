#!/usr/bin/env python3
"""Fetches cuBLAS's, cuDNN's and NCCL's C headers from their PyPI wheels, without the wheels.

The wheels are 200-520 MB of libraries; the headers are under 1 MB. A wheel is a zip file, whose
directory sits at its end, so this reads the directory and then only the header members through
HTTP range requests. `make deps` runs it so that the tests can check SwiftSNN's hand-written C
prototypes (Sources/CCUDA/snn_cuda.h, Sources/CNCCL/shim.h) against the real cublas_api.h,
cudnn*.h and nccl.h.

    python3 scripts/fetch_library_headers.py [--into .build/library-headers]

Writes DIR/include/*.h and DIR/VERSIONS (one `package version` line each), the folder replaced
atomically. Exits 1 with the package and URL named when an index or a wheel cannot be read.
"""
import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile

# (package, the folder of its headers inside the wheel, the names to take from it)
WHEELS = [
    ("nvidia-cublas", "nvidia/cu13/include/", lambda name: name.startswith("cublas")),
    ("nvidia-cudnn-cu13", "nvidia/cudnn/include/", lambda name: name.startswith("cudnn")),
    ("nvidia-nccl-cu13", "nvidia/nccl/include/", lambda name: name == "nccl.h"),
]
INDEX = os.environ.get("SNN_PYPI_JSON", "https://pypi.org/pypi")


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a file served over HTTP, read in ranges as zipfile asks."""

    def __init__(self, url, size):
        self.url, self.size, self.position = url, size, 0

    def seekable(self):
        return True

    def readable(self):
        return True

    def tell(self):
        return self.position

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, min(self.size, base + offset))
        return self.position

    def readinto(self, buffer):
        count = min(len(buffer), self.size - self.position)
        if count <= 0:
            return 0
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={self.position}-{self.position + count - 1}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            if response.status != 206:
                raise OSError(f"{self.url}: the server ignored the byte range (HTTP {response.status})")
            data = response.read()
        if len(data) != count:
            raise OSError(f"{self.url}: asked for {count} bytes at {self.position}, got {len(data)}")
        buffer[:count] = data
        self.position += count
        return count


def wheel(package):
    """The newest Linux x86_64 wheel of `package`: (version, URL, size)."""
    index = f"{INDEX}/{package}/json"
    with urllib.request.urlopen(index, timeout=60) as response:
        info = json.load(response)
    for file in info["urls"]:
        if file["filename"].endswith(".whl") and "x86_64" in file["filename"]:
            return info["info"]["version"], urllib.parse.urljoin(index, file["url"]), file["size"]
    raise OSError(f"{index}: no Linux x86_64 wheel of version {info['info']['version']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--into", default=".build/library-headers", help="the folder to write (replaced)")
    args = parser.parse_args()
    parent = os.path.dirname(os.path.abspath(args.into))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".library-headers-", dir=parent)
    try:
        os.makedirs(os.path.join(staging, "include"))
        versions = []
        for package, folder, wanted in WHEELS:
            try:
                version, url, size = wheel(package)
                with zipfile.ZipFile(io.BufferedReader(RangeFile(url, size), buffer_size=1 << 16)) as archive:
                    members = [m for m in archive.namelist()
                               if m.startswith(folder) and "/" not in m[len(folder):] and wanted(m[len(folder):])]
                    if not members:
                        raise OSError(f"{url}: no headers under {folder}")
                    for member in members:
                        with open(os.path.join(staging, "include", member[len(folder):]), "wb") as out:
                            out.write(archive.read(member))
            except (OSError, zipfile.BadZipFile, KeyError, ValueError) as error:
                where = f"{error.url}: " if isinstance(error, urllib.error.HTTPError) else ""
                sys.exit(f"fetch_library_headers: {package}: {where}{error}")
            versions.append(f"{package} {version}")
            print(f"{package} {version}: {len(members)} headers")
        with open(os.path.join(staging, "VERSIONS"), "w") as out:
            out.write("\n".join(versions) + "\n")
        if os.path.exists(args.into):
            shutil.rmtree(args.into)
        os.rename(staging, args.into)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    main()
