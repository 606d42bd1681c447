"""The face: mesh topology (every landmark index), MediaPipe tracking with head pose, and smoothing."""
