from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from hitl_project.security import CSP, csp_override, inline_style_hashes
from hitl_project.views import favicon, healthz, landing

# The split view serves Swagger UI's init script from its own URL (?script), so the
# page has no inline script; its one inline <style> is allowed by hash, and its icons
# are data: images.
SWAGGER_TEMPLATE = SpectacularSwaggerSplitView.template_name
api_docs = csp_override(
    {
        **settings.SECURE_CSP,
        "style-src": [CSP.SELF, *inline_style_hashes(SWAGGER_TEMPLATE)],
        "img-src": [CSP.SELF, "data:"],
    }
)(SpectacularSwaggerSplitView.as_view(url_name="schema"))

urlpatterns = [
    path("", landing, name="landing"),  # also the admin's "View site" (admin.site.site_url)
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(("hitl_project.api", "api"), namespace="api")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", api_docs, name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("metrics", include("metrics.prometheus")),  # Prometheus, behind HITL_METRICS_TOKEN
]
