"""appliance: the box-side supervisor.

It will run the LLM, encoder and video-dehaze workers, watch them (restarts, hardware/serial/
systemd watchdogs), manage heat and serve the local OpenAI-compatible HTTP API. Not built yet:
issues 6 and 7 own it. It never imports quantize.
"""
