"""image_build: reproducible factory images, signed A/B update bundles and a CycloneDX SBOM.

`orbox image build` turns a spec (profile, version, payload wheels, model bundle, config,
units, OS base) into a root filesystem, a GPT factory disk with A/B slots and a .bmap, a signed
update bundle and an SBOM, byte-identical for the same spec. `orbox image install` applies an
update to a slot layout the way RAUC does: check everything first, mark bad, write, mark primary.
"""
