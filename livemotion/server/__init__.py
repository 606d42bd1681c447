"""``livemotion serve``: the HTTP app and its pages (``app``), WebRTC streams (``webrtc``) and the
JSON control API (``control``)."""
