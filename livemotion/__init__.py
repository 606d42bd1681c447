"""livemotion: a real-time emotion filter for video calls."""

import os

# One OpenBLAS thread, set before numpy/scipy load OpenBLAS (it reads this only then). Our matrix
# products are tiny; its worker threads just spin against the tracker, the engine and the video
# codecs: on 2 cores they cost ~10 ms of live p99 and ~25 ms of WebRTC round trip
# (tools/bench_latency.py, tools/bench_webrtc.py). An explicit user setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Images OpenCV will decode, at most (read at its first decode): 64 megapixels, a 9000x7000 photo.
# Its own default, a gigapixel, lets one small uploaded file ask for 3 GB (``POST /animate``).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 26))

__version__ = "0.1.0"
