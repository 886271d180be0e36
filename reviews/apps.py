from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        from reviews import history  # needs the models, which load after this module

        history.connect()
        # Registers the tasks, which the outbox dispatches by name (reviews.delivery.outbox).
        import reviews.tasks  # noqa: F401
