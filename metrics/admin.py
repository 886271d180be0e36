"""The metrics app's admin pages."""

from django.contrib import admin

from metrics import admin_exports  # noqa: F401  (Feedback exports)
from metrics.dashboard import install as install_dashboard

install_dashboard(admin.site)  # the dashboard, at <admin>/metrics/dashboard/
