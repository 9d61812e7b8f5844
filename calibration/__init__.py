"""pf-calibrate: IR -> VIS alignment, written to a calibration YAML that pf-stream reads."""
