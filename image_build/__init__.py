"""image_build: reproducible flashing images and signed A/B update bundles with an SBOM.

Not built yet: issue 8 owns it.
"""
