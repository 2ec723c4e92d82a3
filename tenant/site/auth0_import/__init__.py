"""Bring the M2M part of a tenant over from Auth0 (or another Tessera):
``manage.py auth0 import`` and the dashboard's import page.

``management_api`` and ``deploy_cli`` read a source into an ``export.Export``;
``plan.make_plan`` compares it with the destination tenant (writing
nothing); ``services.auth0_import`` carries the plan out in one
transaction through the apps' services; ``handover`` says what each service
must change afterwards.
"""
