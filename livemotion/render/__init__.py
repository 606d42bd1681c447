"""Rendering the edit into the frame: alignment (the crop the engine sees), compositing (the blend
back), and the editor that runs control -> engine -> compositor for one frame."""
