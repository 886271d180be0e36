"""The REST API (SPEC section 4): views, their input serializers, filters, who may call
what, API-key authentication, rate limits and the request body parser. The router
lives in `hitl_project.api`."""
