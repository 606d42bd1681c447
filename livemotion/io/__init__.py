"""Where frames come from and go to: sources (demo clip, files, webcams), sinks (files, the y4m
pipe, the virtual camera). First and last stage of the pipeline."""
