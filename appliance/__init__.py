"""appliance: the box-side runtime (never imports quantize).

`appliance.supervisor.Supervisor` runs the video, encoder and LLM workers as separate pinned
processes, restarts them with capped backoff, detects stalls from progress heartbeats, feeds the
Linux/serial-MCU/systemd watchdogs only while the critical workers really work, sheds heat with
the profile's thermal bands (video last), and records everything in a hash-chained audit log.
`appliance.api` (issue 7) serves the local OpenAI-compatible HTTP API on top of it.
"""
