"""The fleet path: a small Eclipse hawkBit DDI client that installs RAUC bundles (issue 19).

Off unless the site config has [fleet] server_url, controller_id and target_token. It runs as its
own unit (`orbox-fleet.service`), not under the supervisor: it alone may reach the network, and it
must keep working when the appliance itself does not. Design and proof: docs/images.md#fleet-hawkbit.
"""
