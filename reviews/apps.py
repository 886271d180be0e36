from django.apps import AppConfig

from reviews import history


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        history.connect()
