"""The ground floor: small helpers every orbox package shares, importing nothing of ours.

- `primitives.atomic`: crash-safe file writes (temp file, fsync, rename);
- `primitives.artifacts`: model bundle manifests and streaming sha256 checks of artifacts;
- `primitives.signing`: canonical JSON, ed25519 keys and signatures;
- `primitives.lazy_group`: a click group that imports its subcommands only when used;
- `primitives.distribution`: the installed orbox version, read once from package metadata.
"""
