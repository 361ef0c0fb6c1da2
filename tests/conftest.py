"""What every test shares. The expensive fixtures (tiny models, bundles) live in the `*_data/fixtures.py`
modules, registered here as plugins so that test modules use them by name without importing them.
"""

pytest_plugins = ["appliance_data.fixtures", "api_data.fixtures", "encoder_data.fixtures"]
