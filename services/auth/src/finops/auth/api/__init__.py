"""The HTTP layer: routes, request/response schemas, dependencies. No business rules here."""

from finops.auth.api import api_keys_routes, auth_routes, users_routes, well_known

ROUTERS = (
    auth_routes.router,
    api_keys_routes.router,
    users_routes.router,
    well_known.router,
)
