"""The box's local HTTP API: OpenAI-compatible endpoints, API keys, admission, metrics and the status page.

`appliance.api.app.create_app(supervisor, keys, settings)` builds the FastAPI application on top of a
running `appliance.supervisor.Supervisor`; `appliance.api.server.HttpServer` runs it with uvicorn
inside `orbox serve`. Nothing is imported here, so `orbox api-keys` stays light.
"""
