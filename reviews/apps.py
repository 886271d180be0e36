from django.apps import AppConfig

from reviews import history


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        history.connect()
        # Registers the tasks, which the outbox dispatches by name (reviews.delivery.outbox).
        import reviews.tasks  # noqa: F401
