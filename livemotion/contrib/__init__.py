"""Helpers around the pipeline, not stages of it: independent quality judges (evaluation), the
WebRTC test client (webrtc_probe), debug drawing (overlay) and the preview sheet."""
