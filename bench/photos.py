"""Photos: time and memory to accept and re-encode a 10 MB phone photo.

    .venv/bin/python bench/photos.py [--runs 5] [--megabytes 10]

Makes a JPEG of just under the size limit (a 48 MP-class phone photo with GPS EXIF) and an HEIC
of the same picture, then for each, in a fresh process per run:

- `process`: imaging.process alone (check by content, decode, turn upright, downscale to
  2560 px, re-encode without metadata, thumbnail);
- `upload`: the wizard's upload route end to end through the Flask test client (multipart
  parsing, the draft, the file store, the row), on SQLite in a temporary folder.

It prints the median and worst wall time, the CPU time, and the process's peak RSS (VmHWM, reset
at the child's start) before and after, since a photo's pixels are what costs memory.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import header, save_results  # noqa: E402

LIMIT = 10 * 1024 * 1024  # PHOTO_MAX_BYTES's default


def make_photo(megabytes: float) -> bytes:
    """Return a JPEG with GPS EXIF of at most `megabytes` (as close under it as quality allows)."""
    from tests import images

    limit = min(int(megabytes * 1024 * 1024), LIMIT)
    size = (8064, 6048)  # a 48 MP phone sensor
    from PIL import Image

    picture = images.noisy(size)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = images.GPS
    best = b""
    for quality in (98, 95, 92, 90, 85, 80, 75, 70, 60, 50):
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=quality, exif=exif.tobytes())
        if out.tell() <= limit:
            best = out.getvalue()
            break
    return best or out.getvalue()


def convert(data: bytes, fmt: str) -> bytes:
    """Return the photo in another format, under the limit where quality allows (HEIC)."""
    from PIL import Image

    import hcpform.imaging  # noqa: F401  (registers the HEIF opener)

    with Image.open(io.BytesIO(data)) as image:
        for quality in (90, 80, 70, 60, 50, 40, 30):
            out = io.BytesIO()
            image.save(out, fmt, quality=quality)
            if out.tell() <= LIMIT or fmt != "HEIF":
                break
        return out.getvalue()


def reset_peak() -> None:
    """Forget the peak RSS this process inherited from its parent (Linux 4.0+: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def peak_mb() -> float:
    """Return this process's peak RSS (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(mode: str, path: str) -> dict[str, Any]:
    """Run one measurement in this (fresh) process and return its figures."""
    reset_peak()
    data = Path(path).read_bytes()
    if mode == "process":
        from hcpform import imaging

        rss_before = peak_mb()
        cpu, wall = time.process_time(), time.perf_counter()
        out = imaging.process(data, max_bytes=LIMIT, max_side=2560, max_pixels=60_000_000)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        result = {"out_bytes": len(out.data), "out_size": [out.width, out.height]}
    else:
        result, rss_before, wall, cpu = _upload(data)
    return {
        **result,
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_before_mb": rss_before,
        "rss_peak_mb": peak_mb(),
    }


def _upload(data: bytes) -> tuple[dict[str, Any], float, float, float]:
    from hcpform import create_app, submissions
    from hcpform.database import ensure_default_form
    from hcpform.extensions import db
    from hcpform.models import Form
    from hcpform.timeutil import utcnow
    from hcpform.wizard.csrf import make_token

    folder = tempfile.mkdtemp(prefix="hcpform-bench-photos-")
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench",
            "DATABASE_URL": f"sqlite:///{folder}/bench.db",
            "RATELIMIT_ENABLED": False,
        },
        instance_path=folder,
    )
    with app.app_context():
        db.create_all()
        ensure_default_form()
        form = db.session.scalar(db.select(Form))
        draft = submissions.start_draft(
            form, now=utcnow(), source="hosted", attribution={}, prefill={}
        )
        db.session.commit()
        slug, token = form.slug, draft.token
        with app.test_request_context():
            csrf = make_token(slug, token)
    client = app.test_client()
    rss_before = peak_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    response = client.post(
        f"/f/{slug}/photos?d={token}",
        data={"csrf_token": csrf, "photos": (io.BytesIO(data), "IMG_0001.jpg")},
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if response.status_code != 201:
        raise SystemExit(f"upload refused: {response.status_code} {response.get_data(True)}")
    return {"status": response.status_code}, rss_before, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per measurement")
    parser.add_argument("--megabytes", type=float, default=10.0, help="size of the JPEG made")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    info = header("Photos: accept and re-encode a phone photo")
    folder = Path(tempfile.mkdtemp(prefix="hcpform-bench-photos-"))
    jpeg = make_photo(args.megabytes)
    # A PNG of a whole phone photo is far over the limit (and refused unread): left out.
    inputs = {"JPEG": jpeg, "HEIC": convert(jpeg, "HEIF")}
    results: dict[str, Any] = {"machine": info, "runs": args.runs, "figures": {}}
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    print(f"{'input':<6} {'size':>9}  {'mode':<8} {'wall p50':>9} {'worst':>7} {'cpu p50':>8}"
          f" {'RSS before':>11} {'RSS peak':>9}")  # fmt: skip
    for name, data in inputs.items():
        path = folder / f"photo.{name.lower()}"
        path.write_bytes(data)
        if len(data) > LIMIT:
            print(f"{name:<6} {len(data) / 1048576:>7.1f}MB  skipped: over the 10 MB limit, "
                  "refused before decoding")  # fmt: skip
            continue
        for mode in ("process", "upload"):
            runs = []
            for _ in range(args.runs):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, str(path)],
                    capture_output=True, text=True, check=True, env=env,
                )  # fmt: skip
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            walls = [r["wall_s"] for r in runs]
            row = {
                "input_bytes": len(data),
                "wall_p50_s": statistics.median(walls),
                "wall_max_s": max(walls),
                "cpu_p50_s": statistics.median(r["cpu_s"] for r in runs),
                "rss_before_mb": statistics.median(r["rss_before_mb"] for r in runs),
                "rss_peak_mb": max(r["rss_peak_mb"] for r in runs),
            }
            results["figures"][f"{name} {mode}"] = row
            print(
                f"{name:<6} {len(data) / 1048576:>7.1f}MB  {mode:<8} {row['wall_p50_s']:>8.2f}s"
                f" {row['wall_max_s']:>6.2f}s {row['cpu_p50_s']:>7.2f}s"
                f" {row['rss_before_mb']:>9.1f}MB {row['rss_peak_mb']:>7.1f}MB",
                flush=True,
            )
    print(f"\nresults: {save_results('photos', results)}")


if __name__ == "__main__":
    main()
