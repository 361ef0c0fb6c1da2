"""image_build: reproducible factory images, signed A/B update bundles and a CycloneDX SBOM.

`orbox image build` turns a spec (profile, version, payload wheels, model bundle, config,
units, OS base) into a root filesystem, a GPT factory disk (ESP with GRUB, two RAUC slots, data)
and its .bmap, an SBOM and a build record, byte-identical for the same spec, plus a signed RAUC
verity bundle. On the box, RAUC installs that bundle and GRUB's boot counting falls back.
"""
