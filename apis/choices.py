from django.db import models


class SigningAlgorithm(models.TextChoices):
    RS256 = "RS256", "RS256 (tenant key pair)"
    HS256 = "HS256", "HS256 (API signing secret)"
