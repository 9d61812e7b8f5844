"""Outputs of the fused stream: display, record, RTSP, null — one interface, one thread each."""
