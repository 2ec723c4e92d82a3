"""The floor's two routes, under the same path shape as a Tessera tenant's."""

from django.urls import path

from floor.views import JwksView, TokenView

urlpatterns = [
    path("floor/oauth/token", TokenView.as_view()),
    path("floor/.well-known/jwks.json", JwksView.as_view()),
]
