"""eegmamba-live real-time side: LSL inlet, windows, inference loop, outlets, dashboard, replay."""
