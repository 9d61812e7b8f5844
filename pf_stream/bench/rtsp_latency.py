"""RTSP glass-to-glass latency: stamp the time into frames, read it back on real clients.

    python -m pf_stream.bench.rtsp_latency --size 640x512 --fps 30 --viewers 1 --seconds 10

The server process feeds synthetic frames into :class:`RtspSink`; each frame carries, as a
row of black/white blocks, the ``time.monotonic()`` milliseconds at which it was made.  Each
viewer is a separate process (PyAV, low-delay flags, RTP over TCP) that decodes every frame
and subtracts the stamp from its own ``time.monotonic()`` — the same clock, as both run on
this machine.  That covers: sink hand-off, I420 conversion, encoding, RTP, the network
stack, client jitter buffer and decoding — everything but a camera and a screen.

CPU cost of encoding: the server's process CPU time per second of wall time, with the
given viewers attached (the synthetic feeder's own cost is measured with no viewer and
reported separately, since nothing is encoded then).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import statistics
import sys
import time

import numpy as np

STAMP_BITS = 24  # milliseconds wrap after 4.6 h, far longer than any measurement


def stamp_frame(image: np.ndarray, value: int, bits: int = STAMP_BITS) -> np.ndarray:
    """Write ``value`` into the top rows of ``image`` (in place) as ``bits`` black/white blocks.

    Blocks are big (width // bits, at least 8 px) so H.264 at ordinary bit rates keeps them.
    """
    block = image.shape[1] // bits
    if block < 8:
        raise ValueError(f"image {image.shape[1]} px wide is too narrow for a {bits}-bit stamp")
    for i in range(bits):
        on = (value >> (bits - 1 - i)) & 1
        image[:block, i * block:(i + 1) * block] = 255 if on else 0
    return image


def read_stamp(image: np.ndarray, bits: int = STAMP_BITS) -> int:
    """Read back what :func:`stamp_frame` wrote (sampling the centre of each block)."""
    block = image.shape[1] // bits
    lo, hi = block // 4, block - block // 4
    value = 0
    for i in range(bits):
        patch = image[lo:hi, i * block + lo:i * block + hi]
        value = (value << 1) | int(patch.mean() > 127)
    return value


def now_ms() -> int:
    return int(time.monotonic() * 1000) & ((1 << STAMP_BITS) - 1)


def age_ms(stamp: int) -> int:
    return (now_ms() - stamp) % (1 << STAMP_BITS)


def _viewer(url: str, seconds: float, warmup_s: float, queue) -> None:
    """One viewer process: decode for ``seconds``, report the latency of every frame after warm-up."""
    import av

    latencies: list[int] = []
    seen: set[int] = set()  # a repeated frame is old by design: time each frame's first arrival only
    container = av.open(
        url,
        options={"rtsp_transport": "tcp", "fflags": "nobuffer", "flags": "low_delay", "timeout": "5000000"},
        timeout=(10, 5),
    )
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"  # frame threading would add a frame of delay per thread
    start = time.monotonic()
    try:
        for frame in container.decode(stream):
            elapsed = time.monotonic() - start
            if elapsed > warmup_s + seconds:
                break
            stamp = read_stamp(frame.to_ndarray(format="gray"))
            if elapsed > warmup_s and stamp not in seen:
                latencies.append(age_ms(stamp))
            seen.add(stamp)
    finally:
        container.close()
    queue.put(latencies)


def run(width: int, height: int, fps: float, viewers: int, seconds: float, encoder: str, bitrate: int) -> dict:
    from pf_stream.frames import FusedFrame
    from pf_stream.sinks.rtsp import RtspSink
    from pf_stream.sinks.rtsp_url import parse_rtsp_url

    sink = RtspSink(parse_rtsp_url("rtsp://127.0.0.1:0/bench"), encoder=encoder, bitrate_kbps=bitrate)
    sink.open(width, height, fps)
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)  # something worth encoding
    warmup_s = 2.0

    def feed_for(duration: float, until=lambda: False) -> float:
        """Feed frames at ``fps`` for ``duration`` s (or until ``until()``); return the CPU seconds used."""
        cpu0, t0, seq = time.process_time(), time.monotonic(), 0
        while time.monotonic() - t0 < duration and not until():
            image = np.roll(texture, seq * 4, axis=1)
            sink.write(FusedFrame(stamp_frame(image, now_ms()), time.monotonic(), seq))
            seq += 1
            time.sleep(max(0.0, t0 + seq / fps - time.monotonic()))
        return time.process_time() - cpu0

    try:
        idle_cpu = feed_for(3.0) / 3.0
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        procs = [ctx.Process(target=_viewer, args=(sink.url, seconds, warmup_s, queue)) for _ in range(viewers)]
        for p in procs:
            p.start()
        feed_for(warmup_s + 1.0)  # connect + warm-up, not measured
        busy_cpu = feed_for(seconds - 1.0) / (seconds - 1.0)
        results: list[list[int]] = []

        def all_reported() -> bool:  # keep feeding until every viewer has its numbers
            while not queue.empty():
                results.append(queue.get())
            return len(results) == len(procs)

        feed_for(warmup_s + seconds + 30, until=all_reported)
        for p in procs:
            p.join(timeout=10)
    finally:
        sink.close()
    lat = sorted(v for r in results for v in r)
    return {
        "size": f"{width}x{height}", "fps": fps, "viewers": viewers, "encoder": sink.encoder_element,
        "frames": len(lat), "frames_per_viewer": [len(r) for r in results],
        "per_viewer_median_p95_ms": [_median_p95(r) for r in results],
        "median_ms": _median_p95(lat)[0],
        "p95_ms": _median_p95(lat)[1],
        "server_cpu_idle_pct": round(100 * idle_cpu, 1),
        "server_cpu_encoding_pct": round(100 * busy_cpu, 1),
        "cpu_count": os.cpu_count(),
    }


def _median_p95(values: list[int]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def main(argv: list[str] | None = None) -> int:
    from pf_stream.errors import ArgumentParser, UserError, parse_size

    ap = ArgumentParser(prog="pf-bench --rtsp", description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="640x512", help="frame size WxH (default 640x512)")
    ap.add_argument("--fps", type=float, default=30.0, help="frame rate fed to the server (default 30)")
    ap.add_argument("--viewers", type=int, default=1, help="viewer processes, each decoding every frame (default 1)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds, after 2 s of warm-up (default 10)")
    ap.add_argument("--encoder", default="auto", help="auto | nvv4l2 | nvenc | x264 | openh264")
    ap.add_argument("--bitrate", type=int, default=4000, help="H.264 bit rate, kbit/s (default 4000)")
    args = ap.parse_args(argv)
    width, height = parse_size(args.size)
    if args.viewers < 1 or not args.seconds > 0 or not args.fps > 0 or args.bitrate < 1:
        raise UserError("--rtsp: --viewers must be >= 1, and --seconds, --fps and --bitrate > 0")
    result = run(width, height, args.fps, args.viewers, args.seconds, args.encoder, args.bitrate)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    from pf_stream.errors import cli_entry

    cli_entry("pf-bench --rtsp")(main)()
