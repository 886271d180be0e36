from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = "Metrics"

    def ready(self) -> None:
        # Registers the tasks, which `metrics.exports` dispatches and beat schedules by name.
        import metrics.tasks  # noqa: F401
