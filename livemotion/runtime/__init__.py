"""Running the stages: one stream's ``Pipeline``, the offline and live runners, the latest-frame
mailbox that joins live stages, and the statistics they keep."""
