"""Expression control: Action Units and emotion presets (``au``), the neutral baseline, AU reading,
requests, schedules and the per-stream controller that turns them into target landmarks."""
