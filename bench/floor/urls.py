"""The floor's routes, under the same path shape as a Tessera tenant's; the
async view (the ASGI case) signs with the same issuer and key."""

from django.urls import path

from floor.views import JwksView, TokenView, async_token

urlpatterns = [
    path("floor/oauth/token", TokenView.as_view()),
    path("floor/async/oauth/token", async_token),
    path("floor/.well-known/jwks.json", JwksView.as_view()),
]
