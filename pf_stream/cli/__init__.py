"""Console scripts: pf-stream, pf-bench, pf-eval (pf-export, pf-train, pf-calibrate live in their folders)."""
