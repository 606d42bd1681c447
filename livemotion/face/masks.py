"""Pixel masks around the face: the morphology kernel the compositor's masks and the library's skin mask share."""

from __future__ import annotations

import cv2
import numpy as np


def disc_kernel(radius: int) -> np.ndarray:
    """A filled disc of ``radius`` pixels as a morphology kernel."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
